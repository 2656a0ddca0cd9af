//! Protocol v2's user verification: a platform passkey registered at
//! enrollment, and the WebAuthn assertion each approval then carries,
//! checked on the host (docs/protocol.md, "User verification").
//!
//! The passkey as the registration MAC covers it: u16 length and the web
//! app's origin, u16 length and the credential id, then the credential's
//! 65-byte P-256 public key. An assertion is good when its
//! authenticatorData names the origin's host as rpIdHash with flags UP and
//! UV, its clientDataJSON says `webauthn.get` from that origin over the
//! challenge SHA-256(approval bytes), and its ECDSA signature over
//! authenticatorData || SHA-256(clientDataJSON) verifies with the key.

use crate::envelope::{Assertion, Reader};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::digest::{SHA256, digest};
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

/// Longest origin and credential id accepted, in bytes.
pub const MAX_ORIGIN_LEN: usize = 255;
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;

const FLAG_USER_PRESENT: u8 = 0x01;
const FLAG_USER_VERIFIED: u8 = 0x04;

/// A device's passkey, as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    /// The web app's origin (`https://relay.example.org`), whose host is
    /// the WebAuthn relying party id.
    pub origin: String,
    pub credential_id: Vec<u8>,
    /// Uncompressed SEC1 P-256 point.
    pub public_key: [u8; 65],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyError {
    #[error("the passkey is malformed")]
    Malformed,
    #[error("the assertion is malformed")]
    MalformedAssertion,
    #[error("the assertion is for another site (rpIdHash)")]
    OtherRelyingParty,
    #[error("the authenticator did not see the user (flag UP)")]
    NotPresent,
    #[error("the authenticator did not verify the user (flag UV: no screen lock or biometrics)")]
    NotVerified,
    #[error("the assertion is not a WebAuthn sign-in (type)")]
    WrongType,
    #[error("the assertion was made on another origin")]
    WrongOrigin,
    #[error("the assertion is over other bytes than this approval")]
    WrongChallenge,
    #[error("the assertion's signature does not verify with the enrolled passkey")]
    BadSignature,
}

impl Passkey {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.origin.len() + self.credential_id.len() + 65);
        for part in [self.origin.as_bytes(), &self.credential_id] {
            let part = &part[..part.len().min(usize::from(u16::MAX))];
            out.extend_from_slice(&(part.len() as u16).to_be_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(&self.public_key);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Passkey, PasskeyError> {
        let mut r = Reader(bytes);
        let malformed = |_| PasskeyError::Malformed;
        let origin = r.prefixed("origin", MAX_ORIGIN_LEN).map_err(malformed)?;
        let origin = String::from_utf8(origin.to_vec()).map_err(|_| PasskeyError::Malformed)?;
        let credential_id = r
            .prefixed("credential id", MAX_CREDENTIAL_ID_LEN)
            .map_err(malformed)?
            .to_vec();
        let public_key: [u8; 65] = r.0.try_into().map_err(|_| PasskeyError::Malformed)?;
        if rp_id(&origin).is_none() || credential_id.is_empty() {
            return Err(PasskeyError::Malformed);
        }
        Ok(Passkey {
            origin,
            credential_id,
            public_key,
        })
    }

    /// Checks that `assertion` is this passkey's, made with the user
    /// verified, over `approval` (the encoded approval the device signed).
    pub fn verify(&self, approval: &[u8], assertion: &Assertion) -> Result<(), PasskeyError> {
        let auth = &assertion.authenticator_data;
        if auth.len() < 37 {
            return Err(PasskeyError::MalformedAssertion);
        }
        let rp = rp_id(&self.origin).ok_or(PasskeyError::Malformed)?;
        if auth[..32] != *digest(&SHA256, rp.as_bytes()).as_ref() {
            return Err(PasskeyError::OtherRelyingParty);
        }
        if auth[32] & FLAG_USER_PRESENT == 0 {
            return Err(PasskeyError::NotPresent);
        }
        if auth[32] & FLAG_USER_VERIFIED == 0 {
            return Err(PasskeyError::NotVerified);
        }
        let client: serde_json::Value = serde_json::from_slice(&assertion.client_data_json)
            .map_err(|_| PasskeyError::MalformedAssertion)?;
        if client["type"] != "webauthn.get" {
            return Err(PasskeyError::WrongType);
        }
        if client["origin"] != self.origin.as_str() || client["crossOrigin"] == true {
            return Err(PasskeyError::WrongOrigin);
        }
        let expected = B64.encode(digest(&SHA256, approval));
        // Browsers write the challenge as base64url without padding.
        if client["challenge"]
            .as_str()
            .map(|c| c.trim_end_matches('='))
            != Some(expected.as_str())
        {
            return Err(PasskeyError::WrongChallenge);
        }
        let signed = [
            auth.as_slice(),
            digest(&SHA256, &assertion.client_data_json).as_ref(),
        ]
        .concat();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.public_key)
            .verify(&signed, &assertion.signature)
            .map_err(|_| PasskeyError::BadSignature)
    }
}

/// The relying party id of `origin`: its host, for `http(s)://host[:port]`
/// with nothing after it.
pub fn rp_id(origin: &str) -> Option<&str> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))?;
    let host = match rest.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => rest,
    };
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    ok.then_some(host)
}

/// The origin (`scheme://host[:port]`) of an http(s) URL.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let origin = format!("{scheme}://{authority}");
    rp_id(&origin).is_some().then_some(origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    const ORIGIN: &str = "https://relay.example.org";

    struct Authenticator {
        key: EcdsaKeyPair,
    }

    impl Authenticator {
        fn new() -> Authenticator {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            let key =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            Authenticator { key }
        }

        fn passkey(&self) -> Passkey {
            Passkey {
                origin: ORIGIN.into(),
                credential_id: vec![7; 16],
                public_key: self.key.public_key().as_ref().try_into().unwrap(),
            }
        }

        /// An assertion as a browser makes it, with the parts given.
        fn assert(&self, rp: &str, flags: u8, client: serde_json::Value) -> Assertion {
            let mut auth = digest(&SHA256, rp.as_bytes()).as_ref().to_vec();
            auth.push(flags);
            auth.extend_from_slice(&[0, 0, 0, 1]);
            let client_data_json = serde_json::to_vec(&client).unwrap();
            let signed = [auth.as_slice(), digest(&SHA256, &client_data_json).as_ref()].concat();
            let signature = self
                .key
                .sign(&SystemRandom::new(), &signed)
                .unwrap()
                .as_ref()
                .to_vec();
            Assertion {
                authenticator_data: auth,
                client_data_json,
                signature,
            }
        }
    }

    fn client(approval: &[u8]) -> serde_json::Value {
        serde_json::json!({
            "type": "webauthn.get",
            "challenge": B64.encode(digest(&SHA256, approval)),
            "origin": ORIGIN,
            "crossOrigin": false,
        })
    }

    #[test]
    fn a_verified_assertion_over_the_approval_passes() {
        let a = Authenticator::new();
        let good = a.assert("relay.example.org", 0x05, client(b"approval"));
        assert_eq!(a.passkey().verify(b"approval", &good), Ok(()));
    }

    #[test]
    fn every_wrong_part_is_refused() {
        let a = Authenticator::new();
        let pk = a.passkey();
        let check = |assertion: Assertion| pk.verify(b"approval", &assertion);
        let with = |k: &str, v: serde_json::Value| {
            let mut c = client(b"approval");
            c[k] = v;
            c
        };
        assert_eq!(
            check(a.assert("relay.example.org", 0x01, client(b"approval"))),
            Err(PasskeyError::NotVerified)
        );
        assert_eq!(
            check(a.assert("relay.example.org", 0x04, client(b"approval"))),
            Err(PasskeyError::NotPresent)
        );
        assert_eq!(
            check(a.assert("evil.example.org", 0x05, client(b"approval"))),
            Err(PasskeyError::OtherRelyingParty)
        );
        assert_eq!(
            check(a.assert(
                "relay.example.org",
                0x05,
                with("origin", "https://evil.example.org".into())
            )),
            Err(PasskeyError::WrongOrigin)
        );
        assert_eq!(
            check(a.assert("relay.example.org", 0x05, with("crossOrigin", true.into()))),
            Err(PasskeyError::WrongOrigin)
        );
        assert_eq!(
            check(a.assert(
                "relay.example.org",
                0x05,
                with("type", "webauthn.create".into())
            )),
            Err(PasskeyError::WrongType)
        );
        assert_eq!(
            check(a.assert("relay.example.org", 0x05, client(b"other bytes"))),
            Err(PasskeyError::WrongChallenge)
        );
        // Signed by another authenticator.
        let other = Authenticator::new();
        assert_eq!(
            check(other.assert("relay.example.org", 0x05, client(b"approval"))),
            Err(PasskeyError::BadSignature)
        );
        // Tampered after signing: flags, client data.
        let mut t = a.assert("relay.example.org", 0x05, client(b"approval"));
        t.authenticator_data[36] ^= 1;
        assert_eq!(check(t), Err(PasskeyError::BadSignature));
        let mut t = a.assert("relay.example.org", 0x05, client(b"approval"));
        t.client_data_json.push(b' ');
        assert_eq!(check(t), Err(PasskeyError::BadSignature));
        let mut t = a.assert("relay.example.org", 0x05, client(b"approval"));
        t.authenticator_data.truncate(36);
        assert_eq!(check(t), Err(PasskeyError::MalformedAssertion));
        let mut t = a.assert("relay.example.org", 0x05, client(b"approval"));
        t.client_data_json = b"not json".to_vec();
        assert_eq!(check(t), Err(PasskeyError::MalformedAssertion));
    }

    #[test]
    fn passkeys_round_trip_and_garbage_is_refused() {
        let pk = Authenticator::new().passkey();
        let bytes = pk.encode();
        assert_eq!(Passkey::decode(&bytes), Ok(pk.clone()));
        for cut in 0..bytes.len() {
            assert_eq!(
                Passkey::decode(&bytes[..cut]),
                Err(PasskeyError::Malformed),
                "{cut}"
            );
        }
        let mut long = bytes.clone();
        long.push(4);
        assert_eq!(Passkey::decode(&long), Err(PasskeyError::Malformed));
        let mut bad_origin = pk.clone();
        bad_origin.origin = "ftp://x".into();
        assert_eq!(
            Passkey::decode(&bad_origin.encode()),
            Err(PasskeyError::Malformed)
        );
        assert_eq!(Passkey::decode(&[0xff; 300]), Err(PasskeyError::Malformed));
    }

    #[test]
    fn origins_and_relying_party_ids() {
        assert_eq!(
            rp_id("https://relay.example.org"),
            Some("relay.example.org")
        );
        assert_eq!(rp_id("http://localhost:8480"), Some("localhost"));
        assert_eq!(rp_id("https://a.b/c"), None);
        assert_eq!(rp_id("https://"), None);
        assert_eq!(
            origin_of("https://relay.example.org/app/"),
            Some("https://relay.example.org".into())
        );
        assert_eq!(
            origin_of("http://localhost:8480"),
            Some("http://localhost:8480".into())
        );
        assert_eq!(origin_of("ftp://x/"), None);
    }
}
