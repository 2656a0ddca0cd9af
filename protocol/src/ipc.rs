//! Messages between a client (the PAM module or the `pushmfa` CLI) and the
//! helper. One connection carries one conversation:
//!
//! ```text
//! login:  Begin -> (Step -> Reply)* -> Verdict
//! admin:  Admin -> AdminReply | Refused
//! ```
//!
//! The helper drives the login: every `Step` is answered by exactly one
//! `Reply`, and the conversation ends with a `Verdict`. Anything out of order
//! ends the connection with a failure, never with success.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Client -> helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Starts a login for `user`, with the PAM items the module read.
    Begin(Begin),
    /// Answers the helper's last `Step`.
    Reply(Reply),
    /// An administrative call from the CLI.
    Admin(AdminRequest),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Begin {
    pub user: String,
    pub service: String,
    pub rhost: Option<String>,
    pub tty: Option<String>,
    pub ruser: Option<String>,
    /// The application passed PAM_SILENT: info and error lines are not
    /// shown, so anything the user must see has to be in a prompt.
    #[serde(default)]
    pub silent: bool,
    /// An earlier attempt in this PAM transaction was denied on a device
    /// (the application is retrying, as sudo does after a failure).
    #[serde(default)]
    pub after_denial: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    /// An `Info`/`Error` step was shown (or suppressed by PAM_SILENT).
    /// (Variants without data are written `{}`: serde lets a unit variant
    /// of an internally tagged enum carry unknown fields.)
    Shown {},
    /// What the user typed at a `Prompt` step.
    Answer { text: Zeroizing<String> },
    /// The application's conversation function failed or gave no answer.
    ConversationFailed {},
}

/// Helper -> client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    Step(Step),
    Verdict(Verdict),
    AdminReply(AdminReply),
    /// The request was not allowed or not understood; `message` says why.
    Refused {
        message: String,
    },
}

/// One conversation step for the module to relay through PAM.
///
/// `wait_secs` announces how long the helper may take to send its next frame
/// after the reply (for example while it waits for a phone); the module
/// extends its read timeout accordingly, up to its own ceiling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    Info {
        text: String,
        #[serde(default)]
        wait_secs: u32,
    },
    Error {
        text: String,
        #[serde(default)]
        wait_secs: u32,
    },
    Prompt {
        text: String,
        echo: bool,
        #[serde(default)]
        wait_secs: u32,
    },
}

impl Step {
    pub fn wait_secs(&self) -> u32 {
        match self {
            Step::Info { wait_secs, .. }
            | Step::Error { wait_secs, .. }
            | Step::Prompt { wait_secs, .. } => *wait_secs,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub outcome: Outcome,
    /// The user denied on a device: retries in this PAM transaction should
    /// not push again (the module remembers this in the PAM handle).
    #[serde(default)]
    pub denied_on_device: bool,
}

/// The helper's decision; the module maps it to a PAM return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Second factor verified.
    Success,
    /// Wrong code, denied approval, or not allowed.
    Denied,
    /// The per-login try limit was reached.
    MaxTries,
    /// `policy.unenrolled = "ignore"` and the user is not enrolled.
    Ignore,
    /// State or backend unavailable (corrupt or insecure state, ...).
    Unavailable,
    /// Internal error in the helper.
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminRequest {
    /// Liveness and version check (`pushmfa doctor`).
    Ping {},
    /// Enrollment summary of `user` (the caller's own user when `None`).
    Status { user: Option<String> },
    /// Replaces all recovery codes of `user` with a new generation.
    /// A non-admin caller who already has codes proves possession of one.
    RecoveryGenerate {
        user: Option<String>,
        proof: Option<Proof>,
    },
    /// Clears the recovery-code failure counter and lockout (admin only).
    Unlock { user: String },
    /// Starts enrolling a device: answered by `EnrollStarted` (the URI for
    /// the QR code), then `Enrolled` or `Refused` when the device registered
    /// or the registration timed out. A non-admin caller who is already
    /// enrolled proves it with a recovery code.
    Enroll {
        user: Option<String>,
        proof: Option<Proof>,
    },
    /// Lists the user's devices.
    Devices { user: Option<String> },
    /// Removes a device (by id or name); a non-admin caller proves it's them.
    DeviceRemove {
        user: Option<String>,
        device: String,
        proof: Option<Proof>,
    },
    /// Renames a device.
    DeviceRename {
        user: Option<String>,
        device: String,
        name: String,
    },
    /// Removes all of a user's devices and codes (admin only).
    Reset { user: String },
    /// The users in scope and whether each is ready (admin only).
    Report {},
    /// A one-time invitation for `user` to enroll at a first login,
    /// valid for `days` (admin only).
    Invite { user: String, days: u32 },
    /// Which `[policy]` rule applies to a login, and why (admin only).
    PolicyExplain {
        user: String,
        service: String,
        rhost: Option<String>,
    },
}

/// How a user who is already enrolled proves it is them before changing
/// their factors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Proof {
    /// One of their recovery codes (used up).
    Code { code: Zeroizing<String> },
    /// An approval on one of their enrolled devices; the helper answers
    /// `ApproveOnDevice` with the number first.
    Device {},
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminReply {
    Pong {
        version: String,
        helper_uid: u32,
    },
    Status(UserStatus),
    RecoveryCodes {
        user: String,
        codes: Vec<Zeroizing<String>>,
    },
    Done {
        message: String,
    },
    EnrollStarted {
        uri: String,
        expires_in: u64,
    },
    /// Sent before the final reply when the proof is a device approval.
    ApproveOnDevice {
        number: u8,
        expires_in: u64,
    },
    Enrolled {
        user: String,
        device_id: String,
        device_name: String,
        /// New recovery codes when the user had none (shown once).
        codes: Vec<Zeroizing<String>>,
    },
    DeviceList {
        user: String,
        devices: Vec<DeviceInfo>,
    },
    PolicyExplanation(PolicyExplanation),
    Report {
        users: Vec<UserReport>,
    },
    Invitation {
        user: String,
        code: Zeroizing<String>,
        expires_at: u64,
    },
}

/// One user in `pushmfa report`: scope, factors, last login, readiness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserReport {
    pub user: String,
    /// Whether the scoping rules require the second factor (without a
    /// PAM_RHOST, so exempt_networks does not apply).
    pub in_scope: bool,
    pub rule: String,
    pub devices: u32,
    pub codes_left: u32,
    pub locked_out: bool,
    /// push, offline, recovery-code or failmode-safe; None: never.
    pub last_method: Option<String>,
    pub last_at: Option<u64>,
    /// In scope, and a login now would be refused: no device, no code
    /// left (or codes locked), and unenrolled users are denied.
    pub would_be_locked_out: bool,
}

/// What the scoping rules decide for one login, as a login would decide it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyExplanation {
    pub user: String,
    pub service: String,
    pub rhost: Option<String>,
    /// The user's groups from NSS; None when no rule needed them.
    pub groups: Option<Vec<String>>,
    /// Whether the second factor is required.
    pub required: bool,
    /// The rule that decided: exempt_users, exempt_groups, exempt_networks,
    /// require_groups, default, or nss_lookup (the groups could not be
    /// looked up: required).
    pub rule: String,
    pub why: String,
    /// The settings that then apply to this service, as `key = value`.
    pub settings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceInfo {
    pub id: String,
    pub name: String,
    pub added_at: u64,
    /// 1: requests cross the relay readable; 2: sealed to the device.
    #[serde(default = "protocol_1")]
    pub protocol: u8,
    /// It has a passkey: it can prove its user was verified.
    #[serde(default)]
    pub passkey: bool,
    /// It has an offline key: it can approve with a code, with no network.
    #[serde(default)]
    pub offline: bool,
}

fn protocol_1() -> u8 {
    1
}

impl DeviceInfo {
    /// What the device can do, for people: its protocol and what it
    /// means, then whether it can approve offline.
    pub fn capabilities(&self) -> String {
        let protocol = match (self.protocol, self.passkey) {
            (1, _) => "protocol 1 (the relay can read its requests)",
            (_, false) => "protocol 2 (sealed requests)",
            (_, true) => "protocol 2 (sealed requests, user verification by passkey)",
        };
        let offline = if self.offline {
            "offline codes"
        } else {
            "no offline codes (re-enroll for them)"
        };
        format!("{offline}; {protocol}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserStatus {
    pub user: String,
    pub enrolled: bool,
    pub devices: u32,
    pub codes_left: u32,
    /// Unix time the current codes were generated.
    pub codes_generated_at: Option<u64>,
    pub consecutive_failures: u32,
    pub locked_out: bool,
    /// Seconds until the next recovery-code attempt is accepted (backoff).
    pub retry_after_secs: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode, encode};

    fn round_trip_req(r: Request) {
        let bytes = encode(&r).unwrap();
        let back: Request = decode(&bytes[4..]).unwrap();
        assert_eq!(back, r);
    }

    fn round_trip_resp(r: Response) {
        let bytes = encode(&r).unwrap();
        let back: Response = decode(&bytes[4..]).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn every_message_round_trips() {
        round_trip_req(Request::Reply(Reply::Shown {}));
        round_trip_req(Request::Reply(Reply::Answer {
            text: Zeroizing::new("abcd".into()),
        }));
        round_trip_req(Request::Reply(Reply::ConversationFailed {}));
        round_trip_req(Request::Admin(AdminRequest::Ping {}));
        round_trip_req(Request::Admin(AdminRequest::RecoveryGenerate {
            user: Some("bob".into()),
            proof: None,
        }));
        round_trip_req(Request::Admin(AdminRequest::Unlock { user: "bob".into() }));
        round_trip_resp(Response::Step(Step::Prompt {
            text: "Recovery code: ".into(),
            echo: false,
            wait_secs: 3,
        }));
        round_trip_resp(Response::Verdict(Verdict {
            outcome: Outcome::MaxTries,
            denied_on_device: false,
        }));
        round_trip_resp(Response::Refused {
            message: "no".into(),
        });
        round_trip_resp(Response::AdminReply(AdminReply::Status(UserStatus {
            user: "a".into(),
            enrolled: true,
            devices: 0,
            codes_left: 9,
            codes_generated_at: Some(1),
            consecutive_failures: 0,
            locked_out: false,
            retry_after_secs: None,
        })));
    }

    #[test]
    fn unknown_fields_and_variants_are_rejected() {
        for bad in [
            r#"{"v":1,"msg":{"type":"verdict","outcome":"success","extra":1}}"#,
            r#"{"v":1,"msg":{"type":"verdict","outcome":"sucess"}}"#,
            r#"{"v":1,"msg":{"type":"step","step":"prompt","text":"x"}}"#,
            r#"{"v":1,"msg":null}"#,
            r#"{"v":1}"#,
            r#"[]"#,
        ] {
            assert!(decode::<Response>(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod unknown_fields {
    use super::*;

    /// Review finding: requests with unknown fields were accepted (serde
    /// ignores them on a unit variant of an internally tagged enum).
    #[test]
    fn every_message_refuses_unknown_fields() {
        for (good, bad) in [
            (
                r#"{"type":"admin","call":"ping"}"#,
                r#"{"type":"admin","call":"ping","bogus":1}"#,
            ),
            (
                r#"{"type":"admin","call":"status","user":null}"#,
                r#"{"type":"admin","call":"status","user":null,"bogus":1}"#,
            ),
            (
                r#"{"type":"reply","reply":"shown"}"#,
                r#"{"type":"reply","reply":"shown","bogus":1}"#,
            ),
            (
                r#"{"type":"reply","reply":"conversation_failed"}"#,
                r#"{"type":"reply","reply":"conversation_failed","bogus":1}"#,
            ),
            (
                r#"{"type":"admin","call":"enroll","user":null,"proof":{"kind":"device"}}"#,
                r#"{"type":"admin","call":"enroll","user":null,"proof":{"kind":"device","bogus":1}}"#,
            ),
        ] {
            assert!(serde_json::from_str::<Request>(good).is_ok(), "{good}");
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
        // The wire format of the data-less variants is unchanged.
        assert_eq!(
            serde_json::to_string(&Request::Reply(Reply::Shown {})).unwrap_or_default(),
            r#"{"type":"reply","reply":"shown"}"#
        );
    }
}
