//! Web Push (RFC 8030, 8291, 8292): the relay's VAPID key, checks on the
//! push endpoints devices register, and the wake-up sent to a device's
//! push service when a challenge arrives. Delivery is a hint: a phone that
//! misses it still sees the request when the app opens and polls.
//!
//! The relay must not become a request forger: it only sends to https
//! endpoints of the browsers' push services (or to origins the admin
//! allows), follows no redirects, reads no answer body, and gives every
//! send a short timeout and one retry.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_protocol::relay_api::PushSubscription;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;
use web_push_native::p256::PublicKey;

/// Hosts of the browsers' push services (a subscription's endpoint is
/// chosen by the browser): Google (Chrome, Android), Mozilla, Apple, Microsoft.
const KNOWN_SERVICES: &[&str] = &[
    "fcm.googleapis.com",
    "push.services.mozilla.com",
    "push.apple.com",
    "notify.windows.com",
];
/// Longest endpoint URL accepted.
const MAX_ENDPOINT_LEN: usize = 1024;
/// Sends in flight at once; beyond that a wake-up is skipped (it is a hint).
const MAX_IN_FLIGHT: usize = 64;
/// How long a VAPID token is valid (RFC 8292: at most 24 hours).
const VAPID_VALIDITY_SECS: u64 = 12 * 3600;
const KEY_FILE: &str = "vapid.pk8";

#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The push service says the subscription is gone (404, 410): forget it.
    Gone,
    Failed(String),
}

pub struct Pusher {
    key: EcdsaKeyPair,
    contact: String,
    allow: Vec<String>,
    http: reqwest::Client,
    in_flight: Arc<Semaphore>,
}

/// A fresh VAPID key (P-256, PKCS#8).
pub fn new_key() -> Result<Vec<u8>, String> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map(|k| k.as_ref().to_vec())
        .map_err(|_| "cannot generate the VAPID key".to_owned())
}

impl Pusher {
    /// Loads the VAPID key from `<data>/vapid.pk8`, creating it if missing
    /// (without a data directory the key lives as long as the process, as
    /// the subscriptions do).
    pub fn open(data: Option<&Path>, contact: &str, allow: &[String]) -> Result<Pusher, String> {
        let pkcs8 = match data.map(|d| d.join(KEY_FILE)) {
            Some(path) if path.exists() => {
                let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                if bytes.len() > 1024 {
                    return Err(format!("{}: not a VAPID key (too large)", path.display()));
                }
                bytes
            }
            other => {
                let fresh = new_key()?;
                if let Some(path) = other {
                    pushmfa_config::replace_file(&path, &fresh, 0o600, None)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
                fresh
            }
        };
        Pusher::with_key(&pkcs8, contact, allow)
    }

    /// A pusher signing with the VAPID key `pkcs8` (P-256, PKCS#8).
    pub fn with_key(pkcs8: &[u8], contact: &str, allow: &[String]) -> Result<Pusher, String> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).map_err(
            |_| format!("{KEY_FILE}: not a P-256 PKCS#8 key; move it away to make a new one"),
        )?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Pusher {
            key,
            contact: contact.to_owned(),
            allow: allow
                .iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
            http,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        })
    }

    /// The VAPID public key (65 bytes, base64url): the browser's
    /// `applicationServerKey`.
    pub fn public_key(&self) -> String {
        B64.encode(self.key.public_key().as_ref())
    }

    /// Checks a subscription a device registers; the reason if refused.
    pub fn check(&self, sub: &PushSubscription) -> Result<(), String> {
        self.endpoint(&sub.endpoint)?;
        keys(sub).map(|_| ())
    }

    /// The endpoint as a URL, if the relay may send there.
    fn endpoint(&self, endpoint: &str) -> Result<reqwest::Url, String> {
        if endpoint.len() > MAX_ENDPOINT_LEN {
            return Err("push endpoint too long".into());
        }
        let url =
            reqwest::Url::parse(endpoint).map_err(|_| "push endpoint is not a URL".to_owned())?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("push endpoint carries credentials".into());
        }
        let known = url.scheme() == "https"
            && url.port().is_none()
            && url.host_str().is_some_and(|h| {
                KNOWN_SERVICES
                    .iter()
                    .any(|k| h == *k || h.ends_with(&format!(".{k}")))
            });
        let origin = url.origin().ascii_serialization();
        if known || self.allow.contains(&origin) {
            Ok(url)
        } else {
            Err(format!(
                "push endpoint {origin} is not a browser push service (FCM, Mozilla, Apple, Windows) nor in web_push_allow"
            ))
        }
    }

    /// A VAPID `Authorization` header for `url`'s origin (RFC 8292): an ES256
    /// JWT with `aud` = the origin (with its port), `exp`, `sub` = contact.
    fn vapid(&self, url: &reqwest::Url) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": url.origin().ascii_serialization(),
            "exp": now + VAPID_VALIDITY_SECS,
            "sub": self.contact,
        });
        let claims = B64.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let sig = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| "cannot sign the VAPID token".to_owned())?;
        Ok(format!(
            "vapid t={signing_input}.{}, k={}",
            B64.encode(sig.as_ref()),
            self.public_key()
        ))
    }

    /// Sends `payload` encrypted to `sub`, to be kept by the push service for
    /// at most `ttl` seconds. Skipped (Ok) when too many sends are under way.
    pub async fn send(
        &self,
        sub: &PushSubscription,
        payload: &[u8],
        ttl: u64,
    ) -> Result<(), SendError> {
        let Ok(_permit) = self.in_flight.clone().try_acquire_owned() else {
            return Ok(());
        };
        let url = self.endpoint(&sub.endpoint).map_err(SendError::Failed)?;
        let (public, auth) = keys(sub).map_err(SendError::Failed)?;
        let body = web_push_native::encrypt(payload.to_vec(), &public, &auth)
            .map_err(|e| SendError::Failed(format!("encryption: {e}")))?;
        let authorization = self.vapid(&url).map_err(SendError::Failed)?;
        let mut last = String::new();
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let sent = self
                .http
                .post(url.clone())
                .header("TTL", ttl.to_string())
                .header("Urgency", "high")
                .header("Content-Encoding", "aes128gcm")
                .header("Content-Type", "application/octet-stream")
                .header("Authorization", &authorization)
                .body(body.clone())
                .send()
                .await;
            match sent.map(|r| r.status()) {
                Ok(s) if s.is_success() => return Ok(()),
                Ok(s) if s.as_u16() == 404 || s.as_u16() == 410 => return Err(SendError::Gone),
                Ok(s) if s.is_server_error() || s.as_u16() == 429 => {
                    last = format!("push service answered {s}")
                }
                Ok(s) => return Err(SendError::Failed(format!("push service answered {s}"))),
                Err(e) => last = format!("push service unreachable: {e}"),
            }
        }
        Err(SendError::Failed(last))
    }
}

/// The subscription's public key and auth secret, checked.
fn keys(sub: &PushSubscription) -> Result<(PublicKey, web_push_native::Auth), String> {
    let p256dh = B64
        .decode(sub.p256dh.trim_end_matches('='))
        .map_err(|_| "p256dh is not base64url".to_owned())?;
    let public = PublicKey::from_sec1_bytes(&p256dh)
        .ok()
        .filter(|_| p256dh.len() == 65)
        .ok_or_else(|| "p256dh is not an uncompressed P-256 point".to_owned())?;
    let auth = B64
        .decode(sub.auth.trim_end_matches('='))
        .ok()
        .filter(|a| a.len() == 16)
        .ok_or_else(|| "auth is not 16 bytes of base64url".to_owned())?;
    Ok((public, web_push_native::Auth::clone_from_slice(&auth)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pusher(allow: &[&str]) -> Pusher {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        Pusher::open(None, "mailto:ops@example.org", &allow).unwrap()
    }

    fn sub(endpoint: &str) -> PushSubscription {
        let secret = web_push_native::p256::SecretKey::random(
            &mut web_push_native::p256::elliptic_curve::rand_core::OsRng,
        );
        let point = web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
            &secret.public_key(),
            false,
        );
        PushSubscription {
            endpoint: endpoint.into(),
            p256dh: B64.encode(point.as_bytes()),
            auth: B64.encode([7u8; 16]),
        }
    }

    #[test]
    fn only_push_services_and_allowed_origins_are_targets() {
        let p = pusher(&["http://127.0.0.1:9999"]);
        for ok in [
            "https://fcm.googleapis.com/fcm/send/abc",
            "https://updates.push.services.mozilla.com/wpush/v2/x",
            "https://web.push.apple.com/QGx",
            "https://wns2-by3p.notify.windows.com/w/?token=1",
            "http://127.0.0.1:9999/push/1",
        ] {
            assert_eq!(p.check(&sub(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "http://fcm.googleapis.com/fcm/send/abc",
            "https://fcm.googleapis.com:8443/x",
            "https://evilfcm.googleapis.com.example.org/x",
            "https://notfcm.googleapis.com.attacker.net/x",
            "https://user:pw@fcm.googleapis.com/x",
            "http://127.0.0.1:9998/push/1",
            "http://169.254.169.254/latest/meta-data",
            "https://localhost/",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(p.check(&sub(bad)).is_err(), "{bad}");
        }
        let long = format!("https://fcm.googleapis.com/{}", "a".repeat(2000));
        assert!(p.check(&sub(&long)).is_err());
    }

    #[test]
    fn subscription_keys_are_checked() {
        let p = pusher(&[]);
        let good = sub("https://fcm.googleapis.com/x");
        for (p256dh, auth) in [
            (B64.encode([4u8; 65]), good.auth.clone()),
            ("***".to_owned(), good.auth.clone()),
            (good.p256dh.clone(), B64.encode([1u8; 15])),
            (good.p256dh[..40].to_owned(), good.auth.clone()),
        ] {
            let s = PushSubscription {
                p256dh,
                auth,
                ..good.clone()
            };
            assert!(p.check(&s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn the_vapid_token_names_the_origin_with_its_port_and_verifies() {
        let p = pusher(&["http://127.0.0.1:9999"]);
        let url = reqwest::Url::parse("http://127.0.0.1:9999/push/1").unwrap();
        let h = p.vapid(&url).unwrap();
        let (t, k) = h
            .strip_prefix("vapid t=")
            .and_then(|r| r.split_once(", k="))
            .unwrap();
        assert_eq!(k, p.public_key());
        let (signed, sig) = t.rsplit_once('.').unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(signed.split('.').nth(1).unwrap()).unwrap())
                .unwrap();
        assert_eq!(claims["aud"], "http://127.0.0.1:9999");
        assert_eq!(claims["sub"], "mailto:ops@example.org");
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            B64.decode(k).unwrap(),
        );
        key.verify(signed.as_bytes(), &B64.decode(sig).unwrap())
            .unwrap();
    }

    #[test]
    fn the_key_persists_in_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let a = Pusher::open(Some(dir.path()), "mailto:x@y", &[]).unwrap();
        let b = Pusher::open(Some(dir.path()), "mailto:x@y", &[]).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        std::fs::write(dir.path().join(KEY_FILE), b"garbage").unwrap();
        assert!(Pusher::open(Some(dir.path()), "mailto:x@y", &[]).is_err());
    }
}
