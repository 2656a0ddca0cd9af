//! Requests the real host signs (with its own key from the state
//! directory) but sealed wrongly, posted straight to the relay as the
//! helper would: what a relay, or a bug, could put in front of a device.
//! A device must refuse each and show none of them.

use crate::TestEnv;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_protocol::envelope;
use pushmfa_protocol::relay_api::PostChallenge;
use pushmfa_protocol::sealed::{self, Binding, Direction, OpeningKey};
use pushmfa_protocol::signed::{self, Challenge, Context};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

/// The helper's channel and token for the user's first device, and that
/// device's encryption key (from the helper's state file).
pub fn channel_of(e: &TestEnv, user: &str) -> (String, String, Vec<u8>) {
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(e.state.join(format!("users/{user}.json"))).unwrap_or_default(),
    )
    .unwrap_or_default();
    let d = &state["devices"][0];
    let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
    let key = B64.decode(s("encryption_key")).unwrap_or_default();
    (s("channel_id"), s("channel_token"), key)
}

/// Posts five requests for `context.user`'s first device, shown as host
/// `{host}-1` to `{host}-5`: sealed to another key (1), tampered with (2),
/// bound to another request id (3), sealed for the other direction (4),
/// and one sealed right (5), which the device must show.
pub fn post_badly_sealed(e: &TestEnv, relay_url: &str, host_label: &str, context: &Context) {
    let (channel, token, device_key) = channel_of(e, &context.user);
    assert_eq!(
        device_key.len(),
        65,
        "a protocol 2 device has its key on file"
    );
    // The host's own signing key: these requests are signed as the real
    // host signs, so only the sealing is wrong.
    let der = std::fs::read(e.state.join("host_key.pk8")).unwrap_or_else(|err| panic!("{err}"));
    let rng = ring::rand::SystemRandom::new();
    let host = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
        .unwrap_or_else(|err| panic!("{err}"));
    let host_public = ring::signature::KeyPair::public_key(&host)
        .as_ref()
        .to_vec();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let stranger = OpeningKey::generate().unwrap_or_else(|err| panic!("{err}"));
    let cases: [(&str, u8); 5] = [
        ("to another key", 1),
        ("tampered", 2),
        ("bound to another request", 3),
        ("sealed for the other direction", 4),
        ("sealed right", 5),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|err| panic!("{err}"));
    let http = reqwest::Client::new();
    for (what, n) in cases {
        let challenge = Challenge {
            id: [n; 32],
            host_id: signed::host_id(&host_public),
            host_name: format!("{host_label}-{n}"),
            context: context.clone(),
            issued_at: now,
            expires_at: now + 60,
        };
        let encoded = challenge.encode();
        let sig: [u8; 64] = host
            .sign(&rng, &encoded)
            .unwrap_or_else(|err| panic!("{err}"))
            .as_ref()
            .try_into()
            .unwrap_or_else(|err| panic!("{err}"));
        let plain = envelope::challenge_plaintext(&encoded, &sig);
        let id = B64.encode(challenge.id);
        let other_id = B64.encode([n + 100; 32]);
        let (key, direction, bound_id) = match n {
            1 => (
                stranger.public_key().to_vec(),
                Direction::ToDevice,
                id.as_str(),
            ),
            3 => (device_key.clone(), Direction::ToDevice, other_id.as_str()),
            4 => (device_key.clone(), Direction::ToHost, id.as_str()),
            _ => (device_key.clone(), Direction::ToDevice, id.as_str()),
        };
        let binding = Binding {
            channel: &channel,
            challenge_id: bound_id,
        };
        let mut sealed = sealed::seal(&key, direction, binding, &plain)
            .unwrap_or_else(|err| panic!("{what}: {err}"));
        if n == 2 {
            sealed[200] ^= 1;
        }
        let body = PostChallenge {
            id,
            expires_in: 60,
            challenge: String::new(),
            signature: String::new(),
            sealed: Some(B64.encode(sealed)),
        };
        let post = http
            .post(format!("{relay_url}/v1/channels/{channel}/challenges"))
            .bearer_auth(&token)
            .json(&body)
            .send();
        let st = rt
            .block_on(post)
            .unwrap_or_else(|err| panic!("{err}"))
            .status();
        assert_eq!(st, 201, "{what}");
    }
}
