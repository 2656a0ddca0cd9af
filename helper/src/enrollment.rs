//! Enrolling a device: a relay enrollment slot, a secret that only the QR
//! code carries, and a MAC check that keeps the relay from slipping in a
//! key of its own. Shared by `pushmfa enroll` (admin) and enrollment at a
//! first login: [`start`] makes the URI for the QR code, [`finish`] waits
//! for the device and keeps it.

use crate::codes;
use crate::ctx::Ctx;
use crate::log::Q;
use crate::user_state::{generate_codes, with_state};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_protocol::enroll::{
    EnrollUri, RegistrationV2, verify_registration_mac, verify_registration_mac_v2,
};
use pushmfa_protocol::passkey::{self, Passkey};
use pushmfa_protocol::relay_api::{DeviceRegistration, EnrollmentCreated, EnrollmentOutcome};
use pushmfa_protocol::signed;
use pushmfa_state::{Device, UserName};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// An enrollment waiting for its device.
pub struct Started {
    created: EnrollmentCreated,
    secret: Zeroizing<[u8; 32]>,
    /// The `pushmfa://enroll?...` URI the QR code carries.
    pub uri: Zeroizing<String>,
    /// Seconds the device has to register.
    pub ttl: u64,
}

/// A device enrolled, and the user's first recovery codes if they had none.
pub struct Enrolled {
    pub device_id: String,
    pub device_name: String,
    pub protocol: u8,
    pub codes: Vec<Zeroizing<String>>,
}

/// Opens an enrollment slot on the relay and makes the URI for `user`.
pub async fn start(ctx: &Ctx, user: &UserName) -> Result<Started, String> {
    let relay = ctx.relay.as_ref().ok_or(
        "no push backend is configured: set [backend] kind = \"relay\" and url in pushmfa.toml",
    )?;
    let ttl = u64::from(ctx.cfg.enrollment.registration_timeout_secs);
    let created = relay
        .create_enrollment(ttl)
        .await
        .map_err(|e| format!("cannot start enrollment: {e}"))?;
    let mut secret = Zeroizing::new([0u8; 32]);
    codes::random_bytes(&mut *secret).map_err(|e| e.to_string())?;
    let uri = Zeroizing::new(
        EnrollUri {
            relay: relay.base().to_owned(),
            enrollment_id: created.enrollment_id.clone(),
            secret: *secret,
            host_key: ctx.host_key.public,
            host_name: ctx.host_name(),
            issuer: ctx.cfg.enrollment.issuer.clone(),
            account: user.to_string(),
            user_verification: ctx.cfg.push.user_verification_anywhere(),
        }
        .to_uri(),
    );
    Ok(Started {
        created,
        secret,
        uri,
        ttl,
    })
}

/// Waits for the device to register, checks it, keeps it, tells it so,
/// and makes recovery codes when the user had none.
pub async fn finish(ctx: &Ctx, started: Started, user: &UserName) -> Result<Enrolled, String> {
    let relay = ctx.relay.as_ref().ok_or("no push backend is configured")?;
    let Started {
        created,
        secret,
        ttl,
        ..
    } = started;
    let deadline = Instant::now() + Duration::from_secs(ttl);
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            ctx.log
                .info(&format!("enrollment timed out user={}", Q(user.as_str())));
            return Err(format!(
                "no device registered within {ttl} s; run pushmfa enroll again"
            ));
        }
        match relay
            .wait_enrollment(
                &created.enrollment_id,
                &created.helper_token,
                left.min(Duration::from_secs(30)),
            )
            .await
        {
            Ok(Some(r)) => break r,
            Ok(None) => continue,
            Err(e) => return Err(format!("enrollment failed: {e}")),
        }
    };
    let reg = &result.registration;
    let public = B64.decode(&reg.public_key).unwrap_or_default();
    // What the outcome is signed over: v2 when the device sent an
    // encryption key (even one refused below), so it can check the verdict.
    let v2 = reg.encryption_key.is_some();
    if let Err(refusal) = check_registration(ctx, &secret, &created.enrollment_id, &public, reg) {
        ctx.log.error(&format!(
            "ENROLLMENT REJECTED user={}: {}",
            Q(user.as_str()),
            refusal.log
        ));
        tell_device(ctx, &created, &public, v2, Err(refusal.device)).await;
        // The relay made a channel for the refused key: drop it.
        let _ = relay
            .delete_channel(&result.channel_id, &result.helper_token)
            .await;
        return Err(refusal.user.into());
    }
    let name = pushmfa_protocol::text::sanitize(&reg.device_name, false);
    let device_id = signed::device_id(&public);
    // The key offline codes are checked with: the device derives the same
    // one from the secret it scanned (protocol::offline).
    let offline_key = pushmfa_protocol::offline::derive_key(&secret, &device_id);
    let device = Device {
        id: B64.encode(device_id),
        name: name.clone(),
        public_key: reg.public_key.clone(),
        channel_id: result.channel_id.clone(),
        channel_token: result.helper_token.clone(),
        added_at: ctx.clock.now_unix(),
        encryption_key: reg.encryption_key.clone(),
        passkey: reg.passkey.clone(),
        offline_key: Some(B64.encode(*offline_key)),
    };
    let protocol = device.protocol();
    let device_id = device.id.clone();
    let saved = with_state(ctx, user, move |s| {
        s.devices.retain(|d| d.id != device.id);
        s.devices.push(device);
        Ok(s.recovery.is_none())
    })
    .await;
    let needs_codes = match saved {
        Ok(n) => n,
        Err(e) => {
            tell_device(
                ctx,
                &created,
                &public,
                v2,
                Err("the computer could not save the enrollment"),
            )
            .await;
            return Err(e);
        }
    };
    tell_device(ctx, &created, &public, v2, Ok(())).await;
    let codes = if needs_codes {
        generate_codes(ctx, user).await?
    } else {
        Vec::new()
    };
    Ok(Enrolled {
        device_id,
        device_name: name,
        protocol,
        codes,
    })
}

/// Why a registration was refused, worded for each audience.
struct Refusal {
    log: &'static str,
    user: &'static str,
    device: &'static str,
}

/// The host's checks on a registration: a MAC under the secret only the
/// QR code carried (so the relay cannot slip in a key of its own), and a
/// key that is a point on P-256 (so it can ever verify an approval).
fn check_registration(
    ctx: &Ctx,
    secret: &[u8; 32],
    enrollment_id: &str,
    public: &[u8],
    reg: &DeviceRegistration,
) -> Result<(), Refusal> {
    let mac = B64.decode(&reg.mac).unwrap_or_default();
    let host_id = &ctx.host_key.id;
    let name = &reg.device_name;
    let encryption_key = reg
        .encryption_key
        .as_deref()
        .map(|k| B64.decode(k).unwrap_or_default());
    let passkey = reg
        .passkey
        .as_deref()
        .map(|p| B64.decode(p).unwrap_or_default());
    let mac_ok = public.len() == signed::PUBLIC_KEY_LEN
        && match &encryption_key {
            Some(key) => {
                let v2 = RegistrationV2 {
                    encryption_key: key,
                    passkey: passkey.as_deref().unwrap_or_default(),
                };
                verify_registration_mac_v2(secret, enrollment_id, host_id, public, name, v2, &mac)
            }
            None => verify_registration_mac(secret, enrollment_id, host_id, public, name, &mac),
        };
    if !mac_ok {
        return Err(Refusal {
            log: "the registered key does not carry a valid MAC under the enrollment secret; \
                  the relay or someone else tried to enroll a key of their own",
            user: "the registration did not come from the device that scanned the code (bad MAC); nothing was enrolled",
            device: "the registration did not match the enrollment code (bad MAC); scan the code again",
        });
    }
    if encryption_key.is_none() && ctx.cfg.push.min_protocol >= 2 {
        return Err(Refusal {
            log: "the device speaks protocol 1 and push.min_protocol = 2",
            user: "the device speaks protocol 1, and this computer accepts protocol 2 devices only \
                   (push.min_protocol = 2); nothing was enrolled. Use the web app or update pushmfa-authenticator",
            device: "this app is too old for this computer (it needs protocol 2); update it and scan the code again",
        });
    }
    if let Some(key) = &encryption_key
        && !signed::valid_public_key(key)
    {
        return Err(Refusal {
            log: "the device's encryption key is not a point on P-256",
            user: "the device sent an encryption key that is not a valid P-256 point; nothing was enrolled",
            device: "this phone's encryption key is not a valid P-256 public key; nothing was enrolled",
        });
    }
    if let Some(bytes) = &passkey {
        check_passkey(ctx, bytes, encryption_key.is_some())?;
    }
    if !signed::valid_public_key(public) {
        return Err(Refusal {
            log: "the device's public key is not a point on P-256",
            user: "the device sent a public key that is not a valid P-256 point; nothing was enrolled. \
                   Update the phone app and run pushmfa enroll again",
            device: "this phone's key is not a valid P-256 public key, so the computer cannot use it; nothing was enrolled",
        });
    }
    Ok(())
}

/// A registered passkey must come with protocol 2, parse, carry a P-256
/// key, and have been made on the web app this host sends phones to.
fn check_passkey(ctx: &Ctx, bytes: &[u8], v2: bool) -> Result<(), Refusal> {
    let refuse = |log, user, device| Err(Refusal { log, user, device });
    let Ok(passkey) = Passkey::decode(bytes) else {
        return refuse(
            "the device's passkey is malformed",
            "the device sent a malformed passkey; nothing was enrolled",
            "this phone's passkey could not be read; nothing was enrolled",
        );
    };
    if !v2 || !signed::valid_public_key(&passkey.public_key) {
        return refuse(
            "the device's passkey key is not a P-256 point, or came without protocol 2",
            "the device sent a passkey this computer cannot use; nothing was enrolled",
            "this phone's passkey cannot be used by the computer; nothing was enrolled",
        );
    }
    if !app_origins(&ctx.cfg.backend).contains(&passkey.origin) {
        return refuse(
            "the device's passkey was made on another web app origin than this host's app_url or relay",
            "the device's passkey was made on another site than this computer's web app; nothing was enrolled",
            "this passkey belongs to another site; open the enrollment link from the computer again",
        );
    }
    Ok(())
}

/// The origins of the web app this host's enrollment links open: `app_url`,
/// else each relay's own.
fn app_origins(backend: &pushmfa_config::Backend) -> Vec<String> {
    let urls: Vec<&str> = if backend.app_url.is_empty() {
        backend.url.0.iter().map(String::as_str).collect()
    } else {
        vec![backend.app_url.as_str()]
    };
    urls.into_iter().filter_map(passkey::origin_of).collect()
}

/// Posts the host-signed verdict for the device to wait on. Best effort:
/// the host's decision stands whether or not the device hears of it.
async fn tell_device(
    ctx: &Ctx,
    created: &EnrollmentCreated,
    public: &[u8],
    v2: bool,
    verdict: Result<(), &str>,
) {
    let Some(relay) = ctx.relay.as_ref() else {
        return;
    };
    let accepted = verdict.is_ok();
    let host_encryption_key = ctx.host_key.seal.public_key();
    let message = if v2 {
        signed::enrollment_outcome_v2(
            &created.enrollment_id,
            public,
            &host_encryption_key,
            accepted,
        )
    } else {
        signed::enrollment_outcome(&created.enrollment_id, public, accepted)
    };
    let signature = match ctx.host_key.sign(&message) {
        Ok(s) => s,
        Err(e) => {
            ctx.log
                .error(&format!("cannot sign the enrollment outcome: {e}"));
            return;
        }
    };
    let outcome = EnrollmentOutcome {
        accepted,
        message: verdict.err().unwrap_or_default().to_owned(),
        signature: B64.encode(signature),
        host_encryption_key: v2.then(|| B64.encode(host_encryption_key)),
    };
    if let Err(e) = relay
        .post_enrollment_outcome(&created.enrollment_id, &created.helper_token, &outcome)
        .await
    {
        ctx.log.warning(&format!(
            "could not tell the device the enrollment outcome: error={}",
            Q(&e.to_string())
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passkeys_are_accepted_from_the_app_this_host_links_to() {
        let mut b = pushmfa_config::Backend::default();
        b.url.0 = vec![
            "https://r1.example.org".into(),
            "https://r2.example.org:8443/".into(),
        ];
        assert_eq!(
            app_origins(&b),
            ["https://r1.example.org", "https://r2.example.org:8443"]
        );
        // With an app of the administrator's own, only its origin.
        b.app_url = "https://app.example.org/pushmfa/".into();
        assert_eq!(app_origins(&b), ["https://app.example.org"]);
    }
}
