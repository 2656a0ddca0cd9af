//! One push challenge: issued with a random id and number, signed by the
//! host, and the check of a device's signed answer (the verification order
//! of docs/protocol.md).

use crate::ctx::Ctx;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_protocol::envelope::Assertion;
use pushmfa_protocol::ipc::Begin;
use pushmfa_protocol::passkey::PasskeyError;
use pushmfa_protocol::signed::{self, Approval, Challenge, Decision};
use pushmfa_protocol::signed::{Context, MAX_FIELD_LEN};
use pushmfa_protocol::text::sanitize;
use pushmfa_state::Device;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// A challenge this login issued, and what it expects back.
pub struct Issued {
    pub challenge: Challenge,
    pub number: u8,
    /// Monotonic: wall-clock jumps neither extend nor cut the validity.
    pub deadline: Instant,
    pub consumed: bool,
    /// Answers must carry a passkey assertion with the user verified.
    pub user_verification: bool,
}

/// An answer as it arrived: the encoded approval and the device's
/// signature, whether it came sealed, and its passkey assertion if any.
pub struct Received {
    pub approval: Vec<u8>,
    pub signature: Vec<u8>,
    pub sealed: bool,
    pub assertion: Option<Assertion>,
}

/// Why an answer was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    Malformed,
    UnknownChallenge,
    Consumed,
    Expired,
    FieldMismatch,
    UnknownDevice,
    BadSignature,
    WrongNumber,
    NotSealed,
    NoPasskey,
    UserNotVerified(PasskeyError),
}

impl Rejected {
    pub fn as_str(&self) -> String {
        match self {
            Rejected::UserNotVerified(e) => format!("user verification failed: {e}"),
            other => other.reason().to_owned(),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Rejected::Malformed => "malformed answer",
            Rejected::UnknownChallenge => "answer to another challenge",
            Rejected::Consumed => "challenge already used (replay)",
            Rejected::Expired => "challenge expired",
            Rejected::FieldMismatch => {
                "answer does not match what was issued (host, user, service, rhost, tty or times)"
            }
            Rejected::UnknownDevice => "answer from a device that is not enrolled for this user",
            Rejected::BadSignature => "signature does not verify with the enrolled device key",
            Rejected::WrongNumber => "wrong number",
            Rejected::NotSealed => "a protocol 2 device's answer must come sealed",
            Rejected::NoPasskey => {
                "this sign-in needs user verification, and the answer carries no passkey assertion"
            }
            Rejected::UserNotVerified(_) => "user verification failed",
        }
    }
}

/// An accepted, signed decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub decision: Decision,
    pub device: String,
}

/// Checks a device's answer against what this login issued, in order:
/// known challenge -> not consumed -> not expired -> fields match -> device
/// enrolled -> number (constant time) -> signature. Only an answer whose
/// signature verifies can use the challenge up: a wrong number from the real
/// device consumes it (no second guess); anything unsigned only rejects that
/// message, so a relay cannot burn a login it could merely have dropped.
pub fn check_answer(
    issued: &mut Issued,
    devices: &[Device],
    got: &Received,
    now: Instant,
) -> Result<Accepted, Rejected> {
    let (response, signature) = (&got.approval[..], &got.signature[..]);
    let a = Approval::decode(response).map_err(|_| Rejected::Malformed)?;
    if a.challenge_id != issued.challenge.id {
        return Err(Rejected::UnknownChallenge);
    }
    if issued.consumed {
        return Err(Rejected::Consumed);
    }
    if now >= issued.deadline {
        return Err(Rejected::Expired);
    }
    let c = &issued.challenge;
    if a.host_id != c.host_id
        || a.context != c.context
        || a.issued_at != c.issued_at
        || a.expires_at != c.expires_at
    {
        return Err(Rejected::FieldMismatch);
    }
    let device_id = B64.encode(a.device_id);
    let device = devices
        .iter()
        .find(|d| d.id == device_id)
        .ok_or(Rejected::UnknownDevice)?;
    // Its answer in clear would let the relay read it (and learn the
    // decision): a protocol 2 device never sends one.
    if device.protocol() >= 2 && !got.sealed {
        return Err(Rejected::NotSealed);
    }
    if issued.user_verification {
        use super::verify_user::{Unverified, user_verified};
        user_verified(device, response, got.assertion.as_ref()).map_err(|e| match e {
            Unverified::NoPasskey => Rejected::NoPasskey,
            Unverified::Failed(why) => Rejected::UserNotVerified(why),
        })?;
    }
    let number_ok = match (a.decision, a.number) {
        (Decision::Approve, Some(n)) => bool::from([n].ct_eq(&[issued.number])),
        (Decision::Approve, None) => false,
        _ => true,
    };
    let key = B64
        .decode(&device.public_key)
        .map_err(|_| Rejected::UnknownDevice)?;
    if signed::device_id(&key) != a.device_id {
        return Err(Rejected::UnknownDevice);
    }
    signed::verify(&key, response, signature).map_err(|_| Rejected::BadSignature)?;
    issued.consumed = true;
    if !number_ok {
        return Err(Rejected::WrongNumber);
    }
    Ok(Accepted {
        decision: a.decision,
        device: device.name.clone(),
    })
}

/// A context field as devices are shown it: sanitized, at most
/// `MAX_FIELD_LEN` bytes, cut on a character boundary.
pub fn field(s: Option<&str>) -> String {
    field_at_most(s, MAX_FIELD_LEN)
}

/// [`field`] cut to at most `max` bytes (on a character boundary).
pub fn field_at_most(s: Option<&str>, max: usize) -> String {
    let s = sanitize(s.unwrap_or(""), false);
    let mut cut = s.len().min(max);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_owned()
}

/// What a login's challenge is about, each field cut to `max` bytes.
pub fn context_of(begin: &Begin, max: usize) -> Context {
    Context {
        user: field_at_most(Some(&begin.user), max),
        service: field_at_most(Some(&begin.service), max),
        rhost: field_at_most(begin.rhost.as_deref(), max),
        tty: field_at_most(begin.tty.as_deref(), max),
    }
}

fn random_number() -> u8 {
    loop {
        let mut b = [0u8; 1];
        if crate::codes::random_bytes(&mut b).is_err() {
            continue;
        }
        // 200 = 2 x 100: no modulo bias.
        if b[0] < 200 {
            return b[0] % 100;
        }
    }
}

/// A fresh challenge about `context`, with a random id and number.
pub fn issue(ctx: &Ctx, context: Context, ttl: u32) -> Result<Issued, String> {
    let mut id = [0u8; 32];
    crate::codes::random_bytes(&mut id).map_err(|e| e.to_string())?;
    let now = ctx.clock.now_unix();
    Ok(Issued {
        challenge: Challenge {
            id,
            host_id: ctx.host_key.id,
            host_name: field(Some(&ctx.host_name())),
            context,
            issued_at: now,
            expires_at: now + u64::from(ttl),
        },
        number: random_number(),
        deadline: Instant::now() + Duration::from_secs(u64::from(ttl)),
        consumed: false,
        user_verification: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn got(approval: &[u8], signature: &[u8], sealed: bool) -> Received {
        Received {
            approval: approval.to_vec(),
            signature: signature.to_vec(),
            sealed,
            assertion: None,
        }
    }
    use pushmfa_protocol::signed::Context;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    struct Phone {
        key: EcdsaKeyPair,
    }

    impl Phone {
        fn new() -> Phone {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            Phone {
                key: EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    pkcs8.as_ref(),
                    &rng,
                )
                .unwrap(),
            }
        }
        fn device(&self, name: &str) -> Device {
            let public = self.key.public_key().as_ref();
            Device {
                id: B64.encode(signed::device_id(public)),
                name: name.into(),
                public_key: B64.encode(public),
                channel_id: "c".into(),
                channel_token: "t".into(),
                added_at: 0,
                encryption_key: None,
                passkey: None,
                offline_key: None,
            }
        }
        fn sign(&self, a: &Approval) -> (Vec<u8>, Vec<u8>) {
            let bytes = a.encode();
            let sig = self.key.sign(&SystemRandom::new(), &bytes).unwrap();
            (bytes, sig.as_ref().to_vec())
        }
        fn answer(&self, c: &Challenge, d: Decision, n: Option<u8>) -> Approval {
            Approval::answer(c, d, n, signed::device_id(self.key.public_key().as_ref()))
        }
    }

    fn issued(now: Instant) -> Issued {
        Issued {
            challenge: Challenge {
                id: [1; 32],
                host_id: [2; 32],
                host_name: "h".into(),
                context: Context {
                    user: "alice".into(),
                    service: "sshd".into(),
                    rhost: "203.0.113.7".into(),
                    tty: "ssh".into(),
                },
                issued_at: 1000,
                expires_at: 1060,
            },
            number: 47,
            deadline: now + Duration::from_secs(60),
            consumed: false,
            user_verification: false,
        }
    }

    #[test]
    fn a_protocol_2_devices_answer_must_come_sealed() {
        let now = Instant::now();
        let phone = Phone::new();
        let mut d = phone.device("phone");
        d.encryption_key = Some(B64.encode([4u8; 65]));
        let devices = [d];
        let mut iss = issued(now);
        let (msg, sig) = phone.sign(&phone.answer(&iss.challenge, Decision::Approve, Some(47)));
        assert_eq!(
            check_answer(&mut iss, &devices, &got(&msg, &sig, false), now),
            Err(Rejected::NotSealed)
        );
        assert!(!iss.consumed, "a refused clear answer uses nothing up");
        assert!(check_answer(&mut iss, &devices, &got(&msg, &sig, true), now).is_ok());
    }

    #[test]
    fn where_verification_is_required_no_assertion_is_refused_unused() {
        let now = Instant::now();
        let phone = Phone::new();
        let mut iss = issued(now);
        iss.user_verification = true;
        let (msg, sig) = phone.sign(&phone.answer(&iss.challenge, Decision::Approve, Some(47)));
        let devices = [phone.device("phone")];
        let refused = check_answer(&mut iss, &devices, &got(&msg, &sig, false), now);
        assert_eq!(refused, Err(Rejected::NoPasskey));
        assert!(!iss.consumed, "a refused answer uses nothing up");
    }

    #[test]
    fn approve_then_replay_is_refused() {
        let now = Instant::now();
        let phone = Phone::new();
        let devices = [phone.device("phone")];
        let mut iss = issued(now);
        let (msg, sig) = phone.sign(&phone.answer(&iss.challenge, Decision::Approve, Some(47)));
        let ok = check_answer(&mut iss, &devices, &got(&msg, &sig, false), now).unwrap();
        assert_eq!(ok.decision, Decision::Approve);
        assert_eq!(
            check_answer(&mut iss, &devices, &got(&msg, &sig, false), now),
            Err(Rejected::Consumed)
        );
    }

    #[test]
    fn every_forgery_is_rejected() {
        let now = Instant::now();
        let phone = Phone::new();
        let other = Phone::new();
        let devices = [phone.device("phone")];
        let base = issued(now);
        let good = phone.answer(&base.challenge, Decision::Approve, Some(47));
        let check = |a: &Approval, signer: &Phone, at: Instant| {
            let mut iss = issued(now);
            let (m, s) = signer.sign(a);
            (
                check_answer(&mut iss, &devices, &got(&m, &s, false), at),
                iss.consumed,
            )
        };
        let mut wrong_host = good.clone();
        wrong_host.host_id = [9; 32];
        let mut wrong_user = good.clone();
        wrong_user.context.user = "root".into();
        let mut wrong_service = good.clone();
        wrong_service.context.service = "sudo".into();
        let mut wrong_rhost = good.clone();
        wrong_rhost.context.rhost = "198.51.100.1".into();
        let mut wrong_challenge = good.clone();
        wrong_challenge.challenge_id = [3; 32];
        let mut stretched = good.clone();
        stretched.expires_at += 3600;
        for (name, a, signer, at, want, consumed) in [
            (
                "other host",
                &wrong_host,
                &phone,
                now,
                Rejected::FieldMismatch,
                false,
            ),
            (
                "other user",
                &wrong_user,
                &phone,
                now,
                Rejected::FieldMismatch,
                false,
            ),
            (
                "other service",
                &wrong_service,
                &phone,
                now,
                Rejected::FieldMismatch,
                false,
            ),
            (
                "tampered rhost",
                &wrong_rhost,
                &phone,
                now,
                Rejected::FieldMismatch,
                false,
            ),
            (
                "other challenge",
                &wrong_challenge,
                &phone,
                now,
                Rejected::UnknownChallenge,
                false,
            ),
            (
                "stretched expiry",
                &stretched,
                &phone,
                now,
                Rejected::FieldMismatch,
                false,
            ),
            (
                "expired",
                &good,
                &phone,
                now + Duration::from_secs(61),
                Rejected::Expired,
                false,
            ),
            (
                "unenrolled key claiming to be the phone",
                &good,
                &other,
                now,
                Rejected::BadSignature,
                false,
            ),
        ] {
            assert_eq!(check(a, signer, at), (Err(want), consumed), "{name}");
        }
        // A key that is not enrolled at all, under its own id.
        let foreign = other.answer(&base.challenge, Decision::Approve, Some(47));
        assert_eq!(
            check(&foreign, &other, now),
            (Err(Rejected::UnknownDevice), false)
        );
        // A signature over different bytes.
        let mut iss = issued(now);
        let (m, _) = phone.sign(&good);
        let (_, s2) = phone.sign(&wrong_user);
        assert_eq!(
            check_answer(&mut iss, &devices, &got(&m, &s2, false), now),
            Err(Rejected::BadSignature)
        );
        assert_eq!(
            check_answer(&mut iss, &devices, &got(b"junk", &s2, false), now),
            Err(Rejected::Malformed)
        );
        // The wrong number from the real device uses the challenge up.
        let wrong_number = phone.answer(&base.challenge, Decision::Approve, Some(48));
        assert_eq!(
            check(&wrong_number, &phone, now),
            (Err(Rejected::WrongNumber), true)
        );
        let no_number = phone.answer(&base.challenge, Decision::Approve, None);
        assert_eq!(
            check(&no_number, &phone, now),
            (Err(Rejected::WrongNumber), true)
        );
    }

    #[test]
    fn deny_and_fraud_are_accepted_decisions() {
        let now = Instant::now();
        let phone = Phone::new();
        let devices = [phone.device("phone")];
        for d in [Decision::Deny, Decision::Fraud] {
            let mut iss = issued(now);
            let (m, s) = phone.sign(&phone.answer(&iss.challenge, d, None));
            assert_eq!(
                check_answer(&mut iss, &devices, &got(&m, &s, false), now)
                    .unwrap()
                    .decision,
                d
            );
        }
    }
    #[test]
    fn numbers_are_two_digits_and_fields_are_clean() {
        for _ in 0..1000 {
            assert!(random_number() < 100);
        }
        assert_eq!(field(Some("a\x1b[2Jb")), "a?[2Jb");
        assert_eq!(field(Some(&"é".repeat(200))).len(), 254);
        assert_eq!(field(None), "");
    }
}
