//! JSON bodies of the relay's HTTP API (docs/protocol.md, "Relay API").
//!
//! Binary values are base64url without padding. The relay stores and
//! forwards challenges and responses as opaque strings: it cannot read the
//! enrollment secret, and it cannot forge what hosts and devices sign. In
//! protocol v2 it cannot read them either: they travel `sealed`.

use serde::{Deserialize, Serialize};

/// Longest accepted request body, in bytes.
pub const MAX_BODY_LEN: usize = 16 * 1024;
/// Longest long-poll wait a client may ask for, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;
/// The lengths a v2 `sealed` value may have, decoded (protocol::sealed:
/// 65-byte enc, a padded body of 1024 or 3072 bytes, a 16-byte tag).
pub const SEALED_LENS: [usize; 2] = [1105, 3153];

/// `POST /v1/enrollments` -> 201.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentCreated {
    pub enrollment_id: String,
    /// Authorizes `GET /v1/enrollments/{id}` (waiting for the device).
    pub helper_token: String,
    pub expires_in: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollment {
    /// Seconds the slot stays open (default 120, at most 600).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// `POST /v1/enrollments/{id}/device`, sent by the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRegistration {
    /// Uncompressed SEC1 P-256 public key (65 bytes).
    pub public_key: String,
    pub device_name: String,
    /// HMAC-SHA256 under the enrollment secret; see docs/protocol.md.
    pub mac: String,
    /// Protocol v2: the device's P-256 encryption key (65 bytes), which
    /// challenges are sealed to. Absent: a v1 device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<String>,
    /// Protocol v2 with user verification: the device's passkey
    /// (protocol::passkey), under the same MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey: Option<String>,
}

/// Answer to the device's registration -> 201.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceChannel {
    pub channel_id: String,
    /// Authorizes the device's calls on its channel.
    pub device_token: String,
}

/// `GET /v1/enrollments/{id}` -> 200 once the device registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentResult {
    pub registration: DeviceRegistration,
    pub channel_id: String,
    /// Authorizes the helper's calls on the new channel.
    pub helper_token: String,
}

/// The host's verdict on a registration: `POST /v1/enrollments/{id}/outcome`
/// by the helper (enrollment token), `GET /v1/enrollments/{id}/outcome` by
/// the device (its new device token) -> 200 once the host posted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentOutcome {
    pub accepted: bool,
    /// Why the host refused (empty when accepted), for the phone to show
    /// after removing control characters; at most 512 bytes.
    pub message: String,
    /// The host's signature over `signed::enrollment_outcome(id, device
    /// public key, accepted)` (v1) or `signed::enrollment_outcome_v2(...)`
    /// (v2, which also covers `host_encryption_key`), base64url.
    pub signature: String,
    /// Protocol v2: the host's P-256 encryption key (65 bytes), which
    /// answers are sealed to; present exactly when the device registered
    /// an encryption key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_encryption_key: Option<String>,
}

/// Longest `EnrollmentOutcome::message`, in bytes.
pub const MAX_OUTCOME_MESSAGE_LEN: usize = 512;

/// `POST /v1/channels/{channel}/challenges`, sent by the helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostChallenge {
    /// The challenge id (32 bytes), also inside the challenge.
    pub id: String,
    /// Seconds until the relay forgets it (at most 600).
    pub expires_in: u64,
    /// v1: the encoded challenge (protocol::signed::Challenge).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub challenge: String,
    /// v1: the host's signature over `challenge`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
    /// v2, instead of both: the challenge and its signature sealed to the
    /// device (docs/protocol.md, "Protocol v2").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

/// One pending challenge as a device sees it: what the helper posted, with
/// `expires_in` counting down, and why the host refused the last answer to
/// it if it did (the challenge is then open again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingChallenge {
    pub id: String,
    pub expires_in: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub challenge: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// `POST /v1/channels/{channel}/challenges/{id}/refusal`, sent by the
/// helper after it refused the answer it collected: the relay opens the
/// challenge again so the real device can still answer, and shows devices
/// the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerRefused {
    /// At most 256 bytes.
    pub reason: String,
}

/// Longest `AnswerRefused::reason`, in bytes.
pub const MAX_REFUSAL_LEN: usize = 256;

/// `GET /v1/channels/{channel}/challenges` -> 200.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingList {
    pub challenges: Vec<PendingChallenge>,
}

/// `POST .../challenges/{id}/response` (device) and its `GET` (helper).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeResponse {
    /// v1: the encoded approval (protocol::signed::Approval).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub response: String,
    /// v1: the device's signature over `response`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
    /// v2, instead of both: the answer sealed to the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

/// `PUT /v1/channels/{channel}/push`, sent by the device: where its
/// browser's push service takes Web Push messages (RFC 8030), and the keys
/// they are encrypted to (RFC 8291).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSubscription {
    /// The push service URL (https, a known push service or one the relay's
    /// `web_push_allow` names).
    pub endpoint: String,
    /// The subscription's P-256 public key (65 bytes).
    pub p256dh: String,
    /// The subscription's authentication secret (16 bytes).
    pub auth: String,
}

/// `GET /v1/push/key` -> 200: the relay's VAPID public key (RFC 8292), the
/// `applicationServerKey` a browser subscribes with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VapidKey {
    /// Uncompressed P-256 point (65 bytes).
    pub public_key: String,
}

/// What a Web Push message carries (encrypted to the subscription): which
/// account and request it is about, and with protocol 2 the request sealed
/// to the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushHint {
    /// Always 1.
    pub v: u32,
    pub channel: String,
    /// The challenge id, as in the pending list.
    pub id: String,
    /// Protocol 2: the sealed challenge itself, when it fits a push
    /// message (the 1105-byte size), so the phone can say what the request
    /// is before the app opens; neither the relay nor the push service can
    /// read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

/// Every error answer: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: String,
}
