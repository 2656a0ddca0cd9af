//! The signed messages between a host and an enrolled device.
//!
//! Both are canonical, length-prefixed byte strings; the signature covers
//! exactly these bytes, so two sides that agree on this encoding agree on
//! what was approved. ECDSA P-256 with SHA-256, signatures as raw `r || s`
//! (64 bytes, what WebCrypto produces), public keys as uncompressed SEC1
//! points (65 bytes, `04 || X || Y`). See docs/protocol.md for the layouts
//! and test vectors.
//!
//! - A **challenge** is made and signed by the host: the device (and user)
//!   can tell a real login request from one a relay made up.
//! - An **approval** is made and signed by the device: the host accepts a
//!   login only if its own enrolled key signed it, whatever the relay says.
//!
//! Replay protection is keyed on the challenge id, never on signature bytes
//! (ECDSA signatures are malleable).

use ring::digest::{SHA256, digest};
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

pub const CHALLENGE_TAG: &[u8] = b"pushmfa-challenge-v1\0";
pub const APPROVAL_TAG: &[u8] = b"pushmfa-approval-v1\0";
pub const ENROLLMENT_OUTCOME_TAG: &[u8] = b"pushmfa-enrollment-outcome-v1\0";
pub const ENROLLMENT_OUTCOME_TAG_V2: &[u8] = b"pushmfa-enrollment-outcome-v2\0";
/// Longest text field (user, service, rhost, tty, host name), in bytes.
pub const MAX_FIELD_LEN: usize = 255;
pub const PUBLIC_KEY_LEN: usize = 65;
pub const SIGNATURE_LEN: usize = 64;
/// `number` value in an approval that carries no number (deny, fraud).
pub const NO_NUMBER: u8 = 0xFF;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message does not start with the expected tag")]
    Tag,
    #[error("message truncated")]
    Truncated,
    #[error("trailing bytes after the message")]
    Trailing,
    #[error("text field is longer than {MAX_FIELD_LEN} bytes or not UTF-8")]
    Field,
    #[error("unknown decision {0}")]
    Decision(u8),
    #[error("number {0} out of range")]
    Number(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature does not verify")]
pub struct BadSignature;

/// What a login is about, exactly as the user is shown it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub user: String,
    pub service: String,
    /// Empty when there is no remote host (a local sudo).
    pub rhost: String,
    pub tty: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub id: [u8; 32],
    /// SHA-256 of the host's public key.
    pub host_id: [u8; 32],
    /// The host's name, for display.
    pub host_name: String,
    pub context: Context,
    /// Unix seconds, by the host's clock; the device's clock never decides.
    pub issued_at: u64,
    pub expires_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve = 1,
    Deny = 2,
    Fraud = 3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub challenge_id: [u8; 32],
    pub host_id: [u8; 32],
    pub context: Context,
    pub issued_at: u64,
    pub expires_at: u64,
    pub decision: Decision,
    /// The number the user typed (0-99), `None` for deny and fraud.
    pub number: Option<u8>,
    /// The signing device (first 16 bytes of SHA-256 of its public key).
    pub device_id: [u8; 16],
}

/// SHA-256 of a host public key: the host's identity.
pub fn host_id(public_key: &[u8]) -> [u8; 32] {
    let mut id = [0u8; 32];
    id.copy_from_slice(digest(&SHA256, public_key).as_ref());
    id
}

/// First 16 bytes of SHA-256 of a device public key: the device's id.
pub fn device_id(public_key: &[u8]) -> [u8; 16] {
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest(&SHA256, public_key).as_ref()[..16]);
    id
}

/// Verifies a raw `r || s` ECDSA P-256/SHA-256 signature over `message`.
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), BadSignature> {
    if public_key.len() != PUBLIC_KEY_LEN || signature.len() != SIGNATURE_LEN {
        return Err(BadSignature);
    }
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .verify(message, signature)
        .map_err(|_| BadSignature)
}

/// Whether `public_key` is an uncompressed SEC1 point on P-256 (not the
/// point at infinity). Checked by a throwaway ECDH: ring validates the peer
/// key fully there and exposes no other point check.
pub fn valid_public_key(public_key: &[u8]) -> bool {
    use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
    if public_key.len() != PUBLIC_KEY_LEN || public_key[0] != 0x04 {
        return false;
    }
    let rng = ring::rand::SystemRandom::new();
    let Ok(mine) = EphemeralPrivateKey::generate(&ECDH_P256, &rng) else {
        return false;
    };
    agree_ephemeral(
        mine,
        &UnparsedPublicKey::new(&ECDH_P256, public_key),
        |_| (),
    )
    .is_ok()
}

/// The bytes a host signs to tell a device what became of its
/// registration: tag, enrollment id and the device's public key (each
/// u16-length-prefixed, as in the registration MAC), then 1 (accepted) or
/// 0 (refused). The device checks it with the host key from the QR code,
/// so a relay cannot make a refused phone believe it is enrolled.
pub fn enrollment_outcome(enrollment_id: &str, device_key: &[u8], accepted: bool) -> Vec<u8> {
    outcome_message(
        ENROLLMENT_OUTCOME_TAG,
        &[enrollment_id.as_bytes(), device_key],
        accepted,
    )
}

/// Protocol v2's outcome: as v1 with its own tag and the host's encryption
/// key after the device key, so the device learns that key from the host
/// itself (the relay cannot swap in its own and read the answers).
pub fn enrollment_outcome_v2(
    enrollment_id: &str,
    device_key: &[u8],
    host_encryption_key: &[u8],
    accepted: bool,
) -> Vec<u8> {
    outcome_message(
        ENROLLMENT_OUTCOME_TAG_V2,
        &[enrollment_id.as_bytes(), device_key, host_encryption_key],
        accepted,
    )
}

fn outcome_message(tag: &[u8], parts: &[&[u8]], accepted: bool) -> Vec<u8> {
    let mut m = crate::enroll::length_prefixed(tag, parts);
    m.push(u8::from(accepted));
    m
}

struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn text(&mut self, s: &str) {
        // Callers validate lengths; cut defensively so the prefix stays true.
        let b = &s.as_bytes()[..s.len().min(MAX_FIELD_LEN)];
        self.0.push(b.len() as u8);
        self.0.extend_from_slice(b);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn text(&mut self) -> Result<String, DecodeError> {
        let n = self.u8()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Field)
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn tag(&mut self, tag: &[u8]) -> Result<(), DecodeError> {
        if self.0.len() < tag.len() || &self.0[..tag.len()] != tag {
            return Err(DecodeError::Tag);
        }
        self.0 = &self.0[tag.len()..];
        Ok(())
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing)
        }
    }
}

impl Context {
    /// Whether every field fits the encoding.
    pub fn fits(&self) -> bool {
        [&self.user, &self.service, &self.rhost, &self.tty]
            .iter()
            .all(|f| f.len() <= MAX_FIELD_LEN)
    }

    fn write(&self, w: &mut Writer) {
        w.text(&self.user);
        w.text(&self.service);
        w.text(&self.rhost);
        w.text(&self.tty);
    }

    fn read(r: &mut Reader<'_>) -> Result<Context, DecodeError> {
        Ok(Context {
            user: r.text()?,
            service: r.text()?,
            rhost: r.text()?,
            tty: r.text()?,
        })
    }
}

impl Challenge {
    /// The bytes the host signs.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(128));
        w.bytes(CHALLENGE_TAG);
        w.bytes(&self.id);
        w.bytes(&self.host_id);
        w.text(&self.host_name);
        self.context.write(&mut w);
        w.u64(self.issued_at);
        w.u64(self.expires_at);
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Challenge, DecodeError> {
        let mut r = Reader(bytes);
        r.tag(CHALLENGE_TAG)?;
        let c = Challenge {
            id: r.array()?,
            host_id: r.array()?,
            host_name: r.text()?,
            context: Context::read(&mut r)?,
            issued_at: r.u64()?,
            expires_at: r.u64()?,
        };
        r.end()?;
        Ok(c)
    }
}

impl Approval {
    /// The answer to `challenge` that a device signs.
    pub fn answer(
        challenge: &Challenge,
        decision: Decision,
        number: Option<u8>,
        device_id: [u8; 16],
    ) -> Approval {
        Approval {
            challenge_id: challenge.id,
            host_id: challenge.host_id,
            context: challenge.context.clone(),
            issued_at: challenge.issued_at,
            expires_at: challenge.expires_at,
            decision,
            number,
            device_id,
        }
    }

    /// The bytes the device signs.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(128));
        w.bytes(APPROVAL_TAG);
        w.bytes(&self.challenge_id);
        w.bytes(&self.host_id);
        self.context.write(&mut w);
        w.u64(self.issued_at);
        w.u64(self.expires_at);
        w.0.push(self.decision as u8);
        w.0.push(self.number.unwrap_or(NO_NUMBER));
        w.bytes(&self.device_id);
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Approval, DecodeError> {
        let mut r = Reader(bytes);
        r.tag(APPROVAL_TAG)?;
        let challenge_id = r.array()?;
        let host_id = r.array()?;
        let context = Context::read(&mut r)?;
        let issued_at = r.u64()?;
        let expires_at = r.u64()?;
        let decision = match r.u8()? {
            1 => Decision::Approve,
            2 => Decision::Deny,
            3 => Decision::Fraud,
            d => return Err(DecodeError::Decision(d)),
        };
        let number = match r.u8()? {
            NO_NUMBER => None,
            n if n <= 99 => Some(n),
            n => return Err(DecodeError::Number(n)),
        };
        let device_id = r.array()?;
        r.end()?;
        Ok(Approval {
            challenge_id,
            host_id,
            context,
            issued_at,
            expires_at,
            decision,
            number,
            device_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_vectors::{v, vectors};

    /// The documented example, field by field (docs/protocol.md).
    fn example_challenge() -> Challenge {
        Challenge {
            id: [0x11; 32],
            host_id: host_id(&v("host_public_key")),
            host_name: "web-1.example.org".into(),
            context: Context {
                user: "alice".into(),
                service: "sshd".into(),
                rhost: "203.0.113.7".into(),
                tty: "ssh".into(),
            },
            issued_at: 1_795_000_000,
            expires_at: 1_795_000_060,
        }
    }

    fn example_approval() -> Approval {
        Approval::answer(
            &example_challenge(),
            Decision::Approve,
            Some(47),
            device_id(&v("device_public_key")),
        )
    }

    #[test]
    fn enrollment_outcome_vector_encodes_and_verifies() {
        let id = vectors()["enroll_id"].as_str().unwrap().to_owned();
        let m = enrollment_outcome(&id, &v("device_public_key"), true);
        assert_eq!(m, v("enroll_outcome_accepted"));
        verify(&v("host_public_key"), &m, &v("enroll_outcome_signature")).unwrap();
        // The refusal is a different message: an accepted signature never
        // stands for a refused one, or for another key or enrollment.
        let refused = enrollment_outcome(&id, &v("device_public_key"), false);
        assert_eq!(refused[..m.len() - 1], m[..m.len() - 1]);
        for other in [
            refused,
            enrollment_outcome("other", &v("device_public_key"), true),
            enrollment_outcome(&id, &v("host_public_key"), true),
        ] {
            assert_eq!(
                verify(
                    &v("host_public_key"),
                    &other,
                    &v("enroll_outcome_signature")
                ),
                Err(BadSignature)
            );
        }
    }

    #[test]
    fn only_points_on_the_curve_are_valid_public_keys() {
        assert!(valid_public_key(&v("device_public_key")));
        assert!(valid_public_key(&v("host_public_key")));
        let mut off_curve = v("device_public_key");
        off_curve[64] ^= 1;
        let mut compressed_tag = v("device_public_key");
        compressed_tag[0] = 0x02;
        for bad in [
            off_curve,
            compressed_tag,
            vec![4u8; 65],
            vec![0u8; 65],
            [&[4u8][..], &[0xff; 64]].concat(),
            v("device_public_key")[..33].to_vec(),
            Vec::new(),
        ] {
            assert!(!valid_public_key(&bad), "{bad:?}");
        }
    }

    #[test]
    fn vectors_encode_decode_and_verify() {
        assert_eq!(host_id(&v("host_public_key")).to_vec(), v("host_id"));
        assert_eq!(device_id(&v("device_public_key")).to_vec(), v("device_id"));
        let c = example_challenge();
        assert_eq!(c.encode(), v("challenge_encoded"));
        assert_eq!(Challenge::decode(&v("challenge_encoded")).unwrap(), c);
        verify(
            &v("host_public_key"),
            &v("challenge_encoded"),
            &v("challenge_host_signature"),
        )
        .unwrap();
        let a = example_approval();
        assert_eq!(a.encode(), v("approval_encoded"));
        assert_eq!(Approval::decode(&v("approval_encoded")).unwrap(), a);
        verify(
            &v("device_public_key"),
            &v("approval_encoded"),
            &v("approval_signature"),
        )
        .unwrap();
    }

    #[test]
    fn any_changed_byte_breaks_the_signature() {
        let msg = v("approval_encoded");
        let (key, sig) = (v("device_public_key"), v("approval_signature"));
        for i in 0..msg.len() {
            let mut m = msg.clone();
            m[i] ^= 0x01;
            assert_eq!(verify(&key, &m, &sig), Err(BadSignature), "byte {i}");
        }
        let mut s = sig.clone();
        s[10] ^= 0x80;
        assert_eq!(verify(&key, &msg, &s), Err(BadSignature));
        // The host's key did not sign the approval, nor the device's the challenge.
        assert_eq!(verify(&v("host_public_key"), &msg, &sig), Err(BadSignature));
        assert_eq!(verify(&key, &msg, &sig[..63]), Err(BadSignature));
        assert_eq!(verify(&key[..64], &msg, &sig), Err(BadSignature));
        assert_eq!(verify(&[0u8; 65], &msg, &sig), Err(BadSignature));
    }

    #[test]
    fn garbage_truncation_and_trailing_bytes_are_rejected() {
        let msg = v("approval_encoded");
        for cut in 0..msg.len() {
            assert!(Approval::decode(&msg[..cut]).is_err(), "cut {cut}");
        }
        let mut long = msg.clone();
        long.push(0);
        assert_eq!(Approval::decode(&long), Err(DecodeError::Trailing));
        assert_eq!(Approval::decode(b"garbage"), Err(DecodeError::Tag));
        assert_eq!(Challenge::decode(&msg), Err(DecodeError::Tag));
        let chal = v("challenge_encoded");
        for cut in 0..chal.len() {
            assert!(Challenge::decode(&chal[..cut]).is_err(), "cut {cut}");
        }
        // decision and number bytes sit just before the 16-byte device id.
        let at = msg.len() - 18;
        let mut bad = msg.clone();
        bad[at] = 9;
        assert_eq!(Approval::decode(&bad), Err(DecodeError::Decision(9)));
        let mut bad = msg.clone();
        bad[at + 1] = 100;
        assert_eq!(Approval::decode(&bad), Err(DecodeError::Number(100)));
        // A text field that is not UTF-8.
        let user_at = APPROVAL_TAG.len() + 64 + 1;
        let mut bad = msg;
        bad[user_at] = 0xff;
        assert_eq!(Approval::decode(&bad), Err(DecodeError::Field));
    }

    #[test]
    fn deny_carries_no_number_and_long_fields_do_not_fit() {
        let a = Approval::answer(&example_challenge(), Decision::Deny, None, [1; 16]);
        assert_eq!(Approval::decode(&a.encode()).unwrap(), a);
        let mut c = example_challenge();
        assert!(c.context.fits());
        c.context.rhost = "x".repeat(MAX_FIELD_LEN + 1);
        assert!(!c.context.fits());
    }
}
