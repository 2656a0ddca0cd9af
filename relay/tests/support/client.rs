//! The relay API as a test drives it: enroll a (fake) device, post and
//! answer challenges, against any relay URL (so that one step can go to
//! one instance and the next to another). Shared like `redis_server.rs`.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_protocol::relay_api::*;
use reqwest::StatusCode;

pub fn b64(n: usize, fill: u8) -> String {
    B64.encode(vec![fill; n])
}

/// Enrolls a device: the slot opened on `create`, the device registering
/// on `register`, the host collecting the registration on `collect`.
pub async fn enroll(
    http: &reqwest::Client,
    create: &str,
    register: &str,
    collect: &str,
) -> (EnrollmentResult, DeviceChannel) {
    let (_, result, device) = enroll_slot(http, create, register, collect).await;
    (result, device)
}

/// [`enroll`], also returning the slot (to post the host's verdict on).
pub async fn enroll_slot(
    http: &reqwest::Client,
    create: &str,
    register: &str,
    collect: &str,
) -> (EnrollmentCreated, EnrollmentResult, DeviceChannel) {
    let created: EnrollmentCreated = http
        .post(format!("{create}/v1/enrollments"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reg = DeviceRegistration {
        public_key: b64(65, 4),
        device_name: "phone".into(),
        mac: b64(32, 9),
        encryption_key: None,
        passkey: None,
    };
    let id = &created.enrollment_id;
    let device: DeviceChannel = http
        .post(format!("{register}/v1/enrollments/{id}/device"))
        .json(&reg)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let result: EnrollmentResult = http
        .get(format!("{collect}/v1/enrollments/{id}?wait=5"))
        .bearer_auth(&created.helper_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(result.registration, reg);
    assert_eq!(result.channel_id, device.channel_id);
    (created, result, device)
}

/// The host accepts the registration and the device collects the verdict,
/// which closes the slot.
pub async fn finish_enrollment(
    http: &reqwest::Client,
    relay: &str,
    created: &EnrollmentCreated,
    device: &DeviceChannel,
) {
    let id = &created.enrollment_id;
    let outcome = EnrollmentOutcome {
        accepted: true,
        message: String::new(),
        signature: b64(64, 5),
        host_encryption_key: None,
    };
    let st = http
        .post(format!("{relay}/v1/enrollments/{id}/outcome"))
        .bearer_auth(&created.helper_token)
        .json(&outcome)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::NO_CONTENT);
    let got: EnrollmentOutcome = http
        .get(format!("{relay}/v1/enrollments/{id}/outcome?wait=5"))
        .bearer_auth(&device.device_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, outcome);
}

/// The host posts challenge `id` on `channel`.
pub async fn post_challenge(
    http: &reqwest::Client,
    relay: &str,
    channel: &str,
    token: &str,
    id: &str,
    expires_in: u64,
) -> StatusCode {
    http.post(format!("{relay}/v1/channels/{channel}/challenges"))
        .bearer_auth(token)
        .json(&PostChallenge {
            id: id.into(),
            expires_in,
            challenge: b64(100, 1),
            signature: b64(64, 2),
            sealed: None,
        })
        .send()
        .await
        .unwrap()
        .status()
}

/// A device's (unsigned, for the relay it is opaque) answer to `id`;
/// `fill` tells answers apart.
pub async fn answer(
    http: &reqwest::Client,
    relay: &str,
    channel: &str,
    token: &str,
    id: &str,
    fill: u8,
) -> StatusCode {
    http.post(format!(
        "{relay}/v1/channels/{channel}/challenges/{id}/response"
    ))
    .bearer_auth(token)
    .json(&ChallengeResponse {
        response: b64(80, fill),
        signature: b64(64, fill),
        sealed: None,
    })
    .send()
    .await
    .unwrap()
    .status()
}

/// The device's pending list on `relay`: after `cursor` (an ETag) when
/// given, waiting up to `wait` seconds; the status, the list's ETag and
/// the ids of the challenges (none unless 200).
pub async fn pending(
    http: &reqwest::Client,
    relay: &str,
    channel: &str,
    token: &str,
    cursor: Option<&str>,
    wait: u64,
) -> (StatusCode, String, Vec<String>) {
    let mut req = http
        .get(format!(
            "{relay}/v1/channels/{channel}/challenges?wait={wait}"
        ))
        .bearer_auth(token);
    if let Some(c) = cursor {
        req = req.header("If-None-Match", c);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let etag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let ids = if status == StatusCode::OK {
        let list: PendingList = resp.json().await.unwrap();
        list.challenges.into_iter().map(|c| c.id).collect()
    } else {
        Vec::new()
    };
    (status, etag, ids)
}
