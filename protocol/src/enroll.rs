//! Enrollment: the URI a host shows as a QR code, and the MAC a device
//! sends back with its public key.
//!
//! ```text
//! pushmfa://enroll?v=1&relay=<url>&id=<enrollment id>&secret=<32 bytes>&host_key=<65 bytes>&host=<name>&issuer=<text>&account=<user>
//! ```
//!
//! The secret travels only through the screen (QR code) to the device; the
//! relay sees the enrollment id but never the secret, so it cannot produce
//! a MAC for a key of its own choosing. The host key lets the device check
//! every later challenge.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;

pub const SCHEME_PREFIX: &str = "pushmfa://enroll?";
/// Where the fields start in a link to the relay's web app
/// (`<relay>/app/#enroll?...`): in the fragment, never sent to a server.
pub const APP_FRAGMENT: &str = "#enroll?";
pub const MAC_TAG: &[u8] = b"pushmfa-enroll-v1\0";
/// Protocol v2's registration MAC: it also covers the encryption key and
/// the passkey.
pub const MAC_TAG_V2: &[u8] = b"pushmfa-enroll-v2\0";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollUri {
    pub relay: String,
    pub enrollment_id: String,
    pub secret: [u8; 32],
    pub host_key: [u8; 65],
    pub host_name: String,
    pub issuer: String,
    pub account: String,
    /// The host wants approvals verified by the device's screen lock or
    /// biometrics: a device that can registers a passkey (`uv=1`).
    pub user_verification: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error(
        "not a pushmfa enrollment URI (it starts with {SCHEME_PREFIX}, or is a link to .../app/{APP_FRAGMENT}...)"
    )]
    Scheme,
    #[error("unsupported enrollment URI version")]
    Version,
    #[error("missing or malformed `{0}`")]
    Field(&'static str),
}

fn pct_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn pct_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether a web app at `url` can hold keys: https, or loopback for tests.
pub fn app_url_usable(url: &str) -> bool {
    url.starts_with("https://")
        || ["http://localhost", "http://127.0.0.1", "http://[::1]"]
            .iter()
            .any(|p| {
                url.strip_prefix(p)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
            })
}

impl EnrollUri {
    pub fn to_uri(&self) -> String {
        format!("{SCHEME_PREFIX}{}", self.query())
    }

    /// The link to the relay's phone web app, for a phone's camera.
    pub fn to_app_link(&self) -> String {
        self.to_app_link_at(&self.app_url())
    }

    /// The link to the web app served at `app` (e.g. `https://app.example.org/`).
    pub fn to_app_link_at(&self, app: &str) -> String {
        format!("{app}{APP_FRAGMENT}{}", self.query())
    }

    /// The link a phone's camera opens: to the web app at `app_url` (else
    /// the relay's own), when a phone can use the app there; None when
    /// only a software authenticator can use the URI.
    pub fn phone_link(&self, app_url: Option<&str>) -> Option<zeroize::Zeroizing<String>> {
        let app = app_url.map_or_else(|| self.app_url(), str::to_owned);
        app_url_usable(&app).then(|| zeroize::Zeroizing::new(self.to_app_link_at(&app)))
    }

    /// Where the relay serves the web app.
    pub fn app_url(&self) -> String {
        format!("{}/app/", self.relay.trim_end_matches('/'))
    }

    /// Whether a phone can use the web app at this relay: browsers give
    /// WebCrypto and service workers only to https pages (and loopback).
    pub fn app_reachable(&self) -> bool {
        app_url_usable(&self.relay)
    }

    fn query(&self) -> String {
        format!(
            "v=1&relay={}&id={}&secret={}&host_key={}&host={}&issuer={}&account={}{}",
            pct_encode(&self.relay),
            pct_encode(&self.enrollment_id),
            B64.encode(self.secret),
            B64.encode(self.host_key),
            pct_encode(&self.host_name),
            pct_encode(&self.issuer),
            pct_encode(&self.account),
            if self.user_verification { "&uv=1" } else { "" },
        )
    }
    /// Parses either form: `pushmfa://enroll?...` or `<relay>/app/#enroll?...`.
    pub fn parse(uri: &str) -> Result<EnrollUri, UriError> {
        if uri.len() > 4096 {
            return Err(UriError::Scheme);
        }
        let query = match uri.strip_prefix(SCHEME_PREFIX) {
            Some(q) => q,
            None if uri.starts_with("https://") || uri.starts_with("http://") => uri
                .split_once(APP_FRAGMENT)
                .map(|(_, q)| q)
                .ok_or(UriError::Scheme)?,
            None => return Err(UriError::Scheme),
        };
        let get = |name: &'static str| -> Result<String, UriError> {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
                .and_then(pct_decode)
                .ok_or(UriError::Field(name))
        };
        if get("v")? != "1" {
            return Err(UriError::Version);
        }
        let bytes =
            |name: &'static str, v: String| B64.decode(v).map_err(|_| UriError::Field(name));
        let relay = get("relay")?;
        // Where the device will connect: an http(s) base URL with nothing a
        // terminal or a URL parser could read two ways (no query or
        // fragment, which would also hide a second `#enroll?` in app links).
        let host = relay
            .strip_prefix("https://")
            .or_else(|| relay.strip_prefix("http://"));
        let relay_ok = host.is_some_and(|h| !h.is_empty() && !h.starts_with('/'))
            && !relay
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '#' || c == '?');
        if !relay_ok {
            return Err(UriError::Field("relay"));
        }
        Ok(EnrollUri {
            relay,
            enrollment_id: get("id")?,
            secret: bytes("secret", get("secret")?)?
                .try_into()
                .map_err(|_| UriError::Field("secret"))?,
            host_key: bytes("host_key", get("host_key")?)?
                .try_into()
                .map_err(|_| UriError::Field("host_key"))?,
            host_name: get("host")?,
            issuer: get("issuer")?,
            account: get("account")?,
            user_verification: get("uv").is_ok_and(|v| v == "1"),
        })
    }
}

fn mac_input(
    enrollment_id: &str,
    host_id: &[u8; 32],
    public_key: &[u8],
    device_name: &str,
) -> Vec<u8> {
    length_prefixed(
        MAC_TAG,
        &[
            enrollment_id.as_bytes(),
            host_id.as_slice(),
            public_key,
            device_name.as_bytes(),
        ],
    )
}

/// `tag`, then each part with its u16 big-endian length in front.
pub(crate) fn length_prefixed(tag: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Vec::with_capacity(tag.len() + parts.iter().map(|p| p.len() + 2).sum::<usize>());
    m.extend_from_slice(tag);
    for part in parts {
        // Callers bound every part far below 64 KiB; cut defensively so
        // the prefix stays true.
        let part = &part[..part.len().min(usize::from(u16::MAX))];
        m.extend_from_slice(&(part.len() as u16).to_be_bytes());
        m.extend_from_slice(part);
    }
    m
}

/// HMAC-SHA256 of `input` under the enrollment secret.
fn mac_of(secret: &[u8; 32], input: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut out = [0u8; 32];
    out.copy_from_slice(hmac::sign(&key, input).as_ref());
    out
}

/// Whether `mac` is that HMAC, compared in constant time.
fn mac_matches(secret: &[u8; 32], input: &[u8], mac: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, input, mac).is_ok()
}

/// What a v2 registration adds to the v1 one, all under its MAC.
#[derive(Debug, Clone, Copy)]
pub struct RegistrationV2<'a> {
    /// The device's P-256 encryption key (65 bytes).
    pub encryption_key: &'a [u8],
    /// The device's passkey (`docs/protocol.md`), empty when it has none.
    pub passkey: &'a [u8],
}

/// The v2 MAC input: MAC_TAG_V2, then enrollment id, host id, device public
/// key, device name, encryption key and passkey, each u16-length-prefixed.
pub fn mac_input_v2(
    enrollment_id: &str,
    host_id: &[u8; 32],
    public_key: &[u8],
    device_name: &str,
    v2: RegistrationV2<'_>,
) -> Vec<u8> {
    length_prefixed(
        MAC_TAG_V2,
        &[
            enrollment_id.as_bytes(),
            host_id.as_slice(),
            public_key,
            device_name.as_bytes(),
            v2.encryption_key,
            v2.passkey,
        ],
    )
}

/// The v2 registration MAC (HMAC-SHA256 of [`mac_input_v2`]).
pub fn registration_mac_v2(
    secret: &[u8; 32],
    enrollment_id: &str,
    host_id: &[u8; 32],
    public_key: &[u8],
    device_name: &str,
    v2: RegistrationV2<'_>,
) -> [u8; 32] {
    mac_of(
        secret,
        &mac_input_v2(enrollment_id, host_id, public_key, device_name, v2),
    )
}

/// Checks a v2 registration MAC in constant time.
pub fn verify_registration_mac_v2(
    secret: &[u8; 32],
    enrollment_id: &str,
    host_id: &[u8; 32],
    public_key: &[u8],
    device_name: &str,
    v2: RegistrationV2<'_>,
    mac: &[u8],
) -> bool {
    let input = mac_input_v2(enrollment_id, host_id, public_key, device_name, v2);
    mac_matches(secret, &input, mac)
}

/// HMAC-SHA256 under the enrollment secret over tag, enrollment id, host id,
/// device public key and device name (each u16-length-prefixed).
pub fn registration_mac(
    secret: &[u8; 32],
    enrollment_id: &str,
    host_id: &[u8; 32],
    public_key: &[u8],
    device_name: &str,
) -> [u8; 32] {
    mac_of(
        secret,
        &mac_input(enrollment_id, host_id, public_key, device_name),
    )
}

/// Checks a registration MAC in constant time.
pub fn verify_registration_mac(
    secret: &[u8; 32],
    enrollment_id: &str,
    host_id: &[u8; 32],
    public_key: &[u8],
    device_name: &str,
    mac: &[u8],
) -> bool {
    let input = mac_input(enrollment_id, host_id, public_key, device_name);
    mac_matches(secret, &input, mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_vectors::unhex;

    fn sample() -> EnrollUri {
        EnrollUri {
            relay: "https://relay.example.org:8443/base-path".into(),
            enrollment_id: "abc_DEF-123".into(),
            secret: [7; 32],
            host_key: [4; 65],
            host_name: "web-1".into(),
            issuer: "Example & Co".into(),
            account: "alice@web-1".into(),
            user_verification: false,
        }
    }

    #[test]
    fn uri_round_trips_and_rejects_garbage() {
        let u = sample();
        assert_eq!(EnrollUri::parse(&u.to_uri()).unwrap(), u);
        assert_eq!(EnrollUri::parse("https://x"), Err(UriError::Scheme));
        assert_eq!(
            EnrollUri::parse(&u.to_uri().replace("v=1", "v=2")),
            Err(UriError::Version)
        );
        let cut = u.to_uri();
        assert!(EnrollUri::parse(&cut[..cut.len() / 2]).is_err());
        assert_eq!(
            EnrollUri::parse(&u.to_uri().replace(&B64.encode([7u8; 32]), "short")),
            Err(UriError::Field("secret"))
        );
        assert!(EnrollUri::parse(&format!("{SCHEME_PREFIX}{}", "a".repeat(5000))).is_err());
        assert!(EnrollUri::parse(&u.to_uri().replace("web-1&", "%ZZ&")).is_err());
        // The relay must be an http(s) URL with no control or blank
        // characters (found by the enroll_uri fuzz target).
        for relay in [
            "https:\u{1f}/relay.example.org",
            "ftp://relay",
            "https://a b",
            "relay",
            "https://r/app/#enroll?v=2",
            "https://r?x",
        ] {
            let bad = EnrollUri {
                relay: relay.into(),
                ..sample()
            };
            assert_eq!(
                EnrollUri::parse(&bad.to_uri()),
                Err(UriError::Field("relay")),
                "{relay:?}"
            );
        }
    }

    #[test]
    fn the_app_link_carries_the_same_fields_in_its_fragment() {
        let u = sample();
        let link = u.to_app_link();
        assert!(link.starts_with("https://relay.example.org:8443/base-path/app/#enroll?v=1&"));
        assert_eq!(EnrollUri::parse(&link).unwrap(), u);
        assert_eq!(
            EnrollUri::parse("https://relay.example.org/app/"),
            Err(UriError::Scheme)
        );
        assert_eq!(
            EnrollUri::parse(&link.replace("https://", "ftp://")),
            Err(UriError::Scheme)
        );
        let at = |relay: &str| EnrollUri {
            relay: relay.into(),
            ..sample()
        };
        assert!(at("https://relay.example.org").app_reachable());
        assert!(at("http://127.0.0.1:8480").app_reachable());
        assert!(at("http://localhost").app_reachable());
        assert!(!at("http://relay.example.org").app_reachable());
        assert!(!at("http://localhost.evil.example").app_reachable());
        assert!(!at("http://127.0.0.1.nip.io").app_reachable());
    }

    /// The documented vector (docs/protocol.md, "Enrollment").
    #[test]
    fn mac_test_vector() {
        let v = crate::test_vectors::vectors();
        let get = |k: &str| v[k].as_str().unwrap().to_owned();
        let secret: [u8; 32] = unhex(&get("enroll_secret")).try_into().unwrap();
        let host_id: [u8; 32] = unhex(&get("host_id")).try_into().unwrap();
        let pk = unhex(&get("device_public_key"));
        let (id, name) = (get("enroll_id"), get("enroll_device_name"));
        assert_eq!(
            mac_input(&id, &host_id, &pk, &name),
            unhex(&get("enroll_mac_input"))
        );
        assert_eq!(
            registration_mac(&secret, &id, &host_id, &pk, &name).to_vec(),
            unhex(&get("enroll_mac"))
        );
    }

    /// The v2 vectors (docs/protocol.md, "Protocol 2 end to end").
    #[test]
    fn v2_mac_and_outcome_vectors() {
        let v = crate::test_vectors::vectors();
        let get = |k: &str| unhex(v[k].as_str().unwrap());
        let secret: [u8; 32] = get("enroll_secret").try_into().unwrap();
        let host_id: [u8; 32] = get("host_id").try_into().unwrap();
        let (pk, enc) = (get("device_public_key"), get("sealed_recipient_public"));
        let id = v["enroll_id"].as_str().unwrap();
        let name = v["enroll_device_name"].as_str().unwrap();
        let v2 = RegistrationV2 {
            encryption_key: &enc,
            passkey: &[],
        };
        assert_eq!(
            mac_input_v2(id, &host_id, &pk, name, v2),
            get("enroll_mac_input_v2")
        );
        let mac = registration_mac_v2(&secret, id, &host_id, &pk, name, v2);
        assert_eq!(mac.to_vec(), get("enroll_mac_v2"));
        assert!(verify_registration_mac_v2(
            &secret, id, &host_id, &pk, name, v2, &mac
        ));
        // The v1 MAC of the same fields is another value, and the key is bound.
        assert!(!verify_registration_mac(
            &secret, id, &host_id, &pk, name, &mac
        ));
        let other = RegistrationV2 {
            encryption_key: &[4; 65],
            passkey: &[],
        };
        assert!(!verify_registration_mac_v2(
            &secret, id, &host_id, &pk, name, other, &mac
        ));
        assert_eq!(
            crate::signed::enrollment_outcome_v2(id, &pk, &get("sealed_ephemeral_public"), true),
            get("enroll_outcome_v2_accepted")
        );
    }

    #[test]
    fn mac_binds_every_field() {
        let (s, id, host, key, name) = ([1u8; 32], "enr", [2u8; 32], [4u8; 65], "phone");
        let mac = registration_mac(&s, id, &host, &key, name);
        assert!(verify_registration_mac(&s, id, &host, &key, name, &mac));
        assert!(!verify_registration_mac(
            &[9; 32], id, &host, &key, name, &mac
        ));
        assert!(!verify_registration_mac(
            &s, "enr2", &host, &key, name, &mac
        ));
        assert!(!verify_registration_mac(&s, id, &[3; 32], &key, name, &mac));
        assert!(!verify_registration_mac(
            &s, id, &host, &[5; 65], name, &mac
        ));
        assert!(!verify_registration_mac(
            &s, id, &host, &key, "laptop", &mac
        ));
        assert!(!verify_registration_mac(
            &s,
            id,
            &host,
            &key,
            name,
            &mac[..31]
        ));
    }
}
