//! The relay as a real process on 127.0.0.1, driven over HTTP.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_protocol::relay_api::*;
use reqwest::StatusCode;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/client.rs"]
mod client;
#[path = "support/redis_server.rs"]
mod redis_server;
use client::b64;
use redis_server::RedisServer;

tokio::task_local! {
    /// Set for the run of every case on a Redis store (see `both_stores!`).
    static ON_REDIS: bool;
}

fn on_redis() -> bool {
    ON_REDIS.try_with(|r| *r).unwrap_or(false)
}

struct RelayProc {
    child: Child,
    url: String,
    http: reqwest::Client,
    /// The relay's own Redis, when the case runs on one.
    _redis: Option<RedisServer>,
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: Option<&Path>) -> RelayProc {
    try_start(data).unwrap_or_else(|e| panic!("relay did not start: {e}"))
}

/// A relay on its own store: memory (with `data`), or on a Redis case a
/// private redis-server.
fn try_start(data: Option<&Path>) -> Result<RelayProc, String> {
    let redis = on_redis().then(|| RedisServer::start(&[]));
    let store = redis.as_ref().map(RedisServer::url);
    try_start_on(data, store.as_deref(), redis)
}

/// A relay on the Redis at `url`.
fn start_on(url: &str) -> RelayProc {
    try_start_on(None, Some(url), None).unwrap_or_else(|e| panic!("relay did not start: {e}"))
}

fn try_start_on(
    data: Option<&Path>,
    store: Option<&str>,
    redis: Option<RedisServer>,
) -> Result<RelayProc, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushmfa-relay"));
    cmd.args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    if let Some(d) = data {
        cmd.arg("--data").arg(d);
    }
    if let Some(url) = store {
        cmd.args(["--store", url]);
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let Some(url) = first.strip_prefix("pushmfa-relay: listening on ") else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(first);
    };
    // Keep reading its log so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(RelayProc {
        url: url.to_owned(),
        child,
        http: reqwest::Client::new(),
        _redis: redis,
    })
}

impl RelayProc {
    async fn enroll_device(&self) -> (EnrollmentResult, DeviceChannel) {
        client::enroll(&self.http, &self.url, &self.url, &self.url).await
    }

    async fn post_challenge(
        &self,
        channel: &str,
        token: &str,
        id: &str,
        expires_in: u64,
    ) -> StatusCode {
        client::post_challenge(&self.http, &self.url, channel, token, id, expires_in).await
    }

    async fn answer(&self, channel: &str, token: &str, id: &str) -> StatusCode {
        client::answer(&self.http, &self.url, channel, token, id, 3).await
    }
}

async fn health_and_help() {
    let r = start(None);
    let body = r
        .http
        .get(format!("{}/healthz", r.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok\n");
    let help = Command::new(env!("CARGO_BIN_EXE_pushmfa-relay"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("--listen") && text.contains("never approve"),
        "{text}"
    );
}

async fn long_polls_wake_at_once_on_both_sides() {
    let r = start(None);
    // Enrollment: the helper waits first, the device registers later.
    let created: EnrollmentCreated = r
        .http
        .post(format!("{}/v1/enrollments", r.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let waiter = {
        let (http, url, id, tok) = (
            r.http.clone(),
            r.url.clone(),
            created.enrollment_id.clone(),
            created.helper_token.clone(),
        );
        tokio::spawn(async move {
            let t = Instant::now();
            let resp = http
                .get(format!("{url}/v1/enrollments/{id}?wait=30"))
                .bearer_auth(tok)
                .send()
                .await
                .unwrap();
            (resp.status(), t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reg = DeviceRegistration {
        public_key: b64(65, 4),
        device_name: "phone".into(),
        mac: b64(32, 9),
        encryption_key: None,
        passkey: None,
    };
    let device: DeviceChannel = r
        .http
        .post(format!(
            "{}/v1/enrollments/{}/device",
            r.url, created.enrollment_id
        ))
        .json(&reg)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (status, took) = waiter.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(took < Duration::from_secs(5), "{took:?}");

    // The slot stays until the device has the host's verdict (the helper
    // may ask again); a new device gets its own enrollment.
    let again = r
        .http
        .get(format!(
            "{}/v1/enrollments/{}",
            r.url, created.enrollment_id
        ))
        .bearer_auth(&created.helper_token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);

    let (result, device2) = r.enroll_device().await;
    assert_ne!(device2.channel_id, device.channel_id);
    let (ch, htok, dtok) = (
        result.channel_id.clone(),
        result.helper_token.clone(),
        device2.device_token.clone(),
    );

    // A device polling an empty channel is woken by a new challenge.
    let poller = {
        let (http, url, ch, dtok) = (r.http.clone(), r.url.clone(), ch.clone(), dtok.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            let list: PendingList = http
                .get(format!("{url}/v1/channels/{ch}/challenges?wait=30"))
                .bearer_auth(dtok)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (list, t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = b64(32, 7);
    assert_eq!(
        r.post_challenge(&ch, &htok, &id, 60).await,
        StatusCode::CREATED
    );
    let (list, took) = poller.await.unwrap();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(list.challenges.len(), 1);
    assert_eq!(list.challenges[0].id, id);

    // The helper waiting for the answer is woken by the device's response.
    let answer = {
        let (http, url, ch, id, htok) = (
            r.http.clone(),
            r.url.clone(),
            ch.clone(),
            id.clone(),
            htok.clone(),
        );
        tokio::spawn(async move {
            let t = Instant::now();
            let resp = http
                .get(format!(
                    "{url}/v1/channels/{ch}/challenges/{id}/response?wait=30"
                ))
                .bearer_auth(htok)
                .send()
                .await
                .unwrap();
            (
                resp.status(),
                resp.json::<ChallengeResponse>().await.ok(),
                t.elapsed(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let resp = ChallengeResponse {
        response: b64(120, 5),
        signature: b64(64, 6),
        sealed: None,
    };
    let st = r
        .http
        .post(format!(
            "{}/v1/channels/{ch}/challenges/{id}/response",
            r.url
        ))
        .bearer_auth(&dtok)
        .json(&resp)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (status, body, took) = answer.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Some(resp.clone()));
    assert!(took < Duration::from_secs(5), "{took:?}");

    // Answered and collected: no longer listed, and no second answer while
    // the helper decides (until it withdraws the challenge or refuses).
    let list: PendingList = r
        .http
        .get(format!("{}/v1/channels/{ch}/challenges", r.url))
        .bearer_auth(&dtok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.challenges.is_empty());
    let st = r
        .http
        .post(format!(
            "{}/v1/channels/{ch}/challenges/{id}/response",
            r.url
        ))
        .bearer_auth(&dtok)
        .json(&resp)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::CONFLICT);
    // A poll with nothing to report ends at its deadline with an empty answer.
    let t = Instant::now();
    let st = r
        .http
        .get(format!(
            "{}/v1/channels/{ch}/challenges/{}/response?wait=1",
            r.url,
            b64(32, 8)
        ))
        .bearer_auth(&htok)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::NOT_FOUND);
    let list: PendingList = r
        .http
        .get(format!("{}/v1/channels/{ch}/challenges?wait=1", r.url))
        .bearer_auth(&dtok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.challenges.is_empty() && t.elapsed() >= Duration::from_millis(900));
}

async fn tokens_are_checked_per_role() {
    let r = start(None);
    let (result, device) = r.enroll_device().await;
    let ch = &result.channel_id;
    let id = b64(32, 1);
    // The device token cannot post challenges, nor a made-up one; no token at all is 401 too.
    assert_eq!(
        r.post_challenge(ch, &device.device_token, &id, 60).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        r.post_challenge(ch, "made-up", &id, 60).await,
        StatusCode::UNAUTHORIZED
    );
    let st = r
        .http
        .post(format!("{}/v1/channels/{ch}/challenges", r.url))
        .body("{}")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.post_challenge("nope", &result.helper_token, &id, 60)
            .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        r.post_challenge(ch, &result.helper_token, &id, 60).await,
        StatusCode::CREATED
    );
    // The helper token cannot list or answer as the device.
    let st = r
        .http
        .get(format!("{}/v1/channels/{ch}/challenges", r.url))
        .bearer_auth(&result.helper_token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Another channel's device token is no good here.
    let (_, other) = r.enroll_device().await;
    let st = r
        .http
        .get(format!("{}/v1/channels/{ch}/challenges", r.url))
        .bearer_auth(&other.device_token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Removing the channel (helper only) makes it unknown.
    let st = r
        .http
        .delete(format!("{}/v1/channels/{ch}", r.url))
        .bearer_auth(&device.device_token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let st = r
        .http
        .delete(format!("{}/v1/channels/{ch}", r.url))
        .bearer_auth(&result.helper_token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        r.post_challenge(ch, &result.helper_token, &b64(32, 2), 60)
            .await,
        StatusCode::NOT_FOUND
    );
}

async fn garbage_truncated_and_oversized_bodies_are_rejected() {
    let r = start(None);
    let (result, _) = r.enroll_device().await;
    let url = format!("{}/v1/channels/{}/challenges", r.url, result.channel_id);
    let good = serde_json::to_string(&PostChallenge {
        id: b64(32, 1),
        expires_in: 60,
        challenge: b64(10, 1),
        signature: b64(64, 1),
        sealed: None,
    })
    .unwrap();
    for (name, body, want) in [
        (
            "garbage",
            "\u{0}\u{1}garbage".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "truncated",
            good[..good.len() / 2].to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown field",
            good.replace("\"expires_in\"", "\"extra\":1,\"expires_in\""),
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad base64",
            good.replace(&b64(64, 1), "!!!"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "short id",
            good.replace(&b64(32, 1), &b64(31, 1)),
            StatusCode::BAD_REQUEST,
        ),
        (
            "oversized",
            format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_BODY_LEN + 1)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let resp = r
            .http
            .post(&url)
            .bearer_auth(&result.helper_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert_eq!(status, want, "{name}");
        if want == StatusCode::BAD_REQUEST {
            let e: ErrorBody = resp.json().await.unwrap();
            assert!(!e.error.is_empty(), "{name}");
        }
    }
    // The channel still works afterwards.
    assert_eq!(
        r.post_challenge(&result.channel_id, &result.helper_token, &b64(32, 1), 60)
            .await,
        StatusCode::CREATED
    );
    // A registration with a key of the wrong length.
    let created: EnrollmentCreated = r
        .http
        .post(format!("{}/v1/enrollments", r.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let st = r
        .http
        .post(format!(
            "{}/v1/enrollments/{}/device",
            r.url, created.enrollment_id
        ))
        .json(&DeviceRegistration {
            public_key: b64(64, 4),
            device_name: "p".into(),
            mac: b64(32, 1),
            encryption_key: None,
            passkey: None,
        })
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

async fn limits_expiry_and_duplicates() {
    let r = start(None);
    let (result, device) = r.enroll_device().await;
    let (ch, tok) = (&result.channel_id, &result.helper_token);
    // Expiry: a 1-second challenge is gone after it expires.
    assert_eq!(
        r.post_challenge(ch, tok, &b64(32, 200), 1).await,
        StatusCode::CREATED
    );
    assert_eq!(
        r.post_challenge(ch, tok, &b64(32, 200), 1).await,
        StatusCode::CONFLICT
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let st = r
        .http
        .get(format!(
            "{}/v1/channels/{ch}/challenges/{}/response",
            r.url,
            b64(32, 200)
        ))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::NOT_FOUND);
    // At most 16 pending challenges per channel.
    for i in 0..16u8 {
        assert_eq!(
            r.post_challenge(ch, tok, &b64(32, i), 60).await,
            StatusCode::CREATED,
            "{i}"
        );
    }
    assert_eq!(
        r.post_challenge(ch, tok, &b64(32, 99), 60).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Per-token rate limit: a burst of 100, then 429 for that token only.
    let mut limited = false;
    for _ in 0..150 {
        let st = r
            .http
            .get(format!("{}/v1/channels/{ch}/challenges", r.url))
            .bearer_auth(&device.device_token)
            .send()
            .await
            .unwrap()
            .status();
        if st == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "no 429 after 150 requests");
    assert_eq!(
        r.post_challenge(ch, tok, &b64(32, 98), 60).await,
        StatusCode::TOO_MANY_REQUESTS,
        "pending cap still holds"
    );
}

async fn channels_survive_a_restart_and_corrupt_data_is_refused() {
    if on_redis() {
        return channels_survive_restarts_of_every_relay_and_of_redis().await;
    }
    let dir = tempfile::tempdir().unwrap();
    let (result, device) = {
        let r = start(Some(dir.path()));
        r.enroll_device().await
    };
    let r = start(Some(dir.path()));
    let id = b64(32, 3);
    assert_eq!(
        r.post_challenge(&result.channel_id, &result.helper_token, &id, 60)
            .await,
        StatusCode::CREATED
    );
    let list: PendingList = r
        .http
        .get(format!(
            "{}/v1/channels/{}/challenges",
            r.url, result.channel_id
        ))
        .bearer_auth(&device.device_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.challenges.len(), 1);
    drop(r);
    let stored = std::fs::read_to_string(dir.path().join("channels.json")).unwrap();
    assert!(
        !stored.contains(&result.helper_token) && !stored.contains(&device.device_token),
        "tokens stored in clear"
    );
    std::fs::write(
        dir.path().join("channels.json"),
        &stored[..stored.len() / 2],
    )
    .unwrap();
    let err = try_start(Some(dir.path())).err().unwrap_or_default();
    assert!(err.contains("corrupt"), "{err}");
}

async fn answered_challenges_do_not_block_new_ones() {
    let r = start(None);
    let (result, device) = r.enroll_device().await;
    let (ch, htok, dtok) = (
        &result.channel_id,
        &result.helper_token,
        &device.device_token,
    );
    // Many more logins than the pending cap, one after another.
    for i in 0..20u8 {
        let id = b64(32, i);
        assert_eq!(
            r.post_challenge(ch, htok, &id, 60).await,
            StatusCode::CREATED,
            "login {i}"
        );
        let resp = ChallengeResponse {
            response: b64(120, 5),
            signature: b64(64, 6),
            sealed: None,
        };
        let st = r
            .http
            .post(format!(
                "{}/v1/channels/{ch}/challenges/{id}/response",
                r.url
            ))
            .bearer_auth(dtok)
            .json(&resp)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(st, StatusCode::NO_CONTENT);
        let got = r
            .http
            .get(format!(
                "{}/v1/channels/{ch}/challenges/{id}/response",
                r.url
            ))
            .bearer_auth(htok)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), StatusCode::OK);
        // Collected once: nothing new until the helper decides. It keeps
        // the challenge (answered, hidden) until the helper withdraws it.
        let url = format!("{}/v1/channels/{ch}/challenges/{id}", r.url);
        let again = r
            .http
            .get(format!("{url}/response?wait=0"))
            .bearer_auth(htok)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NO_CONTENT);
        let gone = r.http.delete(&url).bearer_auth(htok).send().await.unwrap();
        assert_eq!(gone.status(), StatusCode::NO_CONTENT);
        let after = r
            .http
            .get(format!("{url}/response?wait=0"))
            .bearer_auth(htok)
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), StatusCode::NOT_FOUND);
    }
}

async fn a_refused_answer_opens_the_challenge_again_and_says_why() {
    let r = start(None);
    let (result, device) = r.enroll_device().await;
    let (ch, htok, dtok) = (
        &result.channel_id,
        &result.helper_token,
        &device.device_token,
    );
    let id = b64(32, 9);
    assert_eq!(
        r.post_challenge(ch, htok, &id, 60).await,
        StatusCode::CREATED
    );
    let url = format!("{}/v1/channels/{ch}/challenges/{id}", r.url);
    let answer = |byte: u8| ChallengeResponse {
        response: b64(120, byte),
        signature: b64(64, byte),
        sealed: None,
    };
    let post = |byte: u8| {
        r.http
            .post(format!("{url}/response"))
            .bearer_auth(dtok)
            .json(&answer(byte))
            .send()
    };
    let collect = || {
        r.http
            .get(format!("{url}/response?wait=0"))
            .bearer_auth(htok)
            .send()
    };
    let refuse = |token: &str| {
        r.http
            .post(format!("{url}/refusal"))
            .bearer_auth(token)
            .json(&AnswerRefused {
                reason: "signature does not verify".into(),
            })
            .send()
    };
    // Refusing before any answer: nothing to refuse.
    assert_eq!(refuse(htok).await.unwrap().status(), StatusCode::CONFLICT);
    assert_eq!(post(1).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(post(2).await.unwrap().status(), StatusCode::CONFLICT);
    let first: ChallengeResponse = collect().await.unwrap().json().await.unwrap();
    assert_eq!(first, answer(1));
    // Hidden from devices while the helper decides.
    let list = |etag: Option<String>| {
        let mut req = r
            .http
            .get(format!("{}/v1/channels/{ch}/challenges?wait=0", r.url))
            .bearer_auth(dtok);
        if let Some(t) = etag {
            req = req.header("if-none-match", t);
        }
        req.send()
    };
    let hidden: PendingList = list(None).await.unwrap().json().await.unwrap();
    assert!(hidden.challenges.is_empty());
    // Only the helper may refuse.
    assert_eq!(
        refuse(dtok).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(refuse(htok).await.unwrap().status(), StatusCode::NO_CONTENT);
    let open: PendingList = list(None).await.unwrap().json().await.unwrap();
    assert_eq!(open.challenges.len(), 1);
    assert_eq!(
        open.challenges[0].refused.as_deref(),
        Some("signature does not verify")
    );
    // The real device answers; the helper collects that one, not the old one.
    assert_eq!(post(3).await.unwrap().status(), StatusCode::NO_CONTENT);
    let second: ChallengeResponse = collect().await.unwrap().json().await.unwrap();
    assert_eq!(second, answer(3));
}

async fn the_host_can_withdraw_a_challenge_and_only_the_host() {
    let r = start(None);
    let (result, device) = r.enroll_device().await;
    let ch = &result.channel_id;
    let id = b64(32, 7);
    assert_eq!(
        r.post_challenge(ch, &result.helper_token, &id, 60).await,
        StatusCode::CREATED
    );
    let withdraw = |token: String| {
        let (http, url) = (
            r.http.clone(),
            format!("{}/v1/channels/{ch}/challenges/{id}", r.url),
        );
        async move {
            http.delete(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let listed = || async {
        let list: PendingList = r
            .http
            .get(format!("{}/v1/channels/{ch}/challenges", r.url))
            .bearer_auth(&device.device_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list.challenges.len()
    };
    assert_eq!(listed().await, 1);
    // The device cannot make the host's request disappear, nor a stranger.
    assert_eq!(
        withdraw(device.device_token.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(withdraw("made-up".into()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(listed().await, 1);
    assert_eq!(
        withdraw(result.helper_token.clone()).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(listed().await, 0);
    // Gone: a second withdrawal is 404, and the device can no longer answer it.
    assert_eq!(
        withdraw(result.helper_token.clone()).await,
        StatusCode::NOT_FOUND
    );
    let st = r.answer(ch, &device.device_token, &id).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// One device long-poll with a cursor: `(status, etag, pending ids)`.
async fn poll_pending(
    r: &RelayProc,
    device: &DeviceChannel,
    cursor: Option<&str>,
    wait: u64,
) -> (StatusCode, String, Vec<String>) {
    let (ch, token) = (&device.channel_id, &device.device_token);
    client::pending(&r.http, &r.url, ch, token, cursor, wait).await
}

async fn a_device_waits_for_what_is_new_with_a_cursor() {
    let r = start(None);
    let (result, device) = r.enroll_device().await;
    let (ch, tok) = (&result.channel_id, &result.helper_token);
    let first = b64(32, 1);
    assert_eq!(
        r.post_challenge(ch, tok, &first, 60).await,
        StatusCode::CREATED
    );
    let (status, etag, ids) = poll_pending(&r, &device, None, 0).await;
    assert_eq!((status, ids.clone()), (StatusCode::OK, vec![first.clone()]));
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    // Nothing new: the relay waits the whole time, then says so (no spinning).
    let t = Instant::now();
    let (status, same, _) = poll_pending(&r, &device, Some(&etag), 1).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(same, etag);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );

    // A second challenge wakes the waiting device at once.
    let second = b64(32, 2);
    let waiting = {
        let (url, chan, token, etag) = (
            r.url.clone(),
            device.channel_id.clone(),
            device.device_token.clone(),
            etag.clone(),
        );
        tokio::spawn(async move {
            let t = Instant::now();
            let resp = reqwest::Client::new()
                .get(format!("{url}/v1/channels/{chan}/challenges?wait=30"))
                .bearer_auth(token)
                .header("If-None-Match", etag)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let list: PendingList = resp.json().await.unwrap();
            (status, list.challenges.len(), t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        r.post_challenge(ch, tok, &second, 60).await,
        StatusCode::CREATED
    );
    let (status, n, waited) = waiting.await.unwrap();
    assert_eq!((status, n), (StatusCode::OK, 2));
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // Answering and withdrawing change the list, and so the cursor.
    let (_, etag, _) = poll_pending(&r, &device, None, 0).await;
    assert_eq!(
        r.answer(ch, &device.device_token, &first).await,
        StatusCode::NO_CONTENT
    );
    let (status, etag2, ids) = poll_pending(&r, &device, Some(&etag), 5).await;
    assert_eq!((status, ids), (StatusCode::OK, vec![second.clone()]));
    let withdrawn = r
        .http
        .delete(format!("{}/v1/channels/{ch}/challenges/{second}", r.url))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap();
    assert_eq!(withdrawn.status(), StatusCode::NO_CONTENT);
    let (status, _, ids) = poll_pending(&r, &device, Some(&etag2), 5).await;
    assert_eq!((status, ids), (StatusCode::OK, Vec::<String>::new()));

    // A cursor from another relay process (or garbage) is simply not current.
    let (status, _, _) = poll_pending(&r, &device, Some("\"other.1\""), 0).await;
    assert_eq!(status, StatusCode::OK);
}

async fn the_app_is_served_with_a_strict_policy() {
    let r = start(None);
    let page = r.http.get(format!("{}/app/", r.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let h = page.headers().clone();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(page.text().await.unwrap().contains("js/main.js"));
    let js = r
        .http
        .get(format!("{}/app/js/protocol.js", r.url))
        .send()
        .await
        .unwrap();
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    for missing in [
        "/app/nope.js",
        "/app/../Cargo.toml",
        "/app/js/../../relay/src/lib.rs",
    ] {
        let resp = r
            .http
            .get(format!("{}{missing}", r.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{missing}");
    }
    let root = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(root.headers()["location"], "/app/");
}

async fn web_push_subscriptions_go_only_to_push_services() {
    let r = start(None);
    let (_, device) = r.enroll_device().await;
    let key: VapidKey = r
        .http
        .get(format!("{}/v1/push/key", r.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(B64.decode(&key.public_key).unwrap().len(), 65);
    let url = format!("{}/v1/channels/{}/push", r.url, device.channel_id);
    // A valid subscription's keys (any P-256 point will do: the relay's own key).
    let sub = |endpoint: &str| PushSubscription {
        endpoint: endpoint.into(),
        p256dh: key.public_key.clone(),
        auth: b64(16, 5),
    };
    let put = |token: &str, s: PushSubscription| {
        r.http
            .put(&url)
            .bearer_auth(token.to_owned())
            .json(&s)
            .send()
    };
    let ok = put(
        &device.device_token,
        sub("https://fcm.googleapis.com/fcm/send/x"),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    for bad in [
        "http://127.0.0.1:9/",
        "https://169.254.169.254/latest",
        "https://fcm.googleapis.com.evil.example/x",
    ] {
        let resp = put(&device.device_token, sub(bad)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: ErrorBody = resp.json().await.unwrap();
        assert!(
            body.error.contains("not a browser push service"),
            "{}",
            body.error
        );
    }
    let wrong = put(
        "not-the-token",
        sub("https://fcm.googleapis.com/fcm/send/x"),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let gone = r
        .http
        .delete(&url)
        .bearer_auth(&device.device_token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
}

async fn every_error_answer_is_a_json_error_body() {
    let r = start(None);
    let big = "a".repeat(20 * 1024);
    let cases = [
        (
            r.http
                .get(format!("{}/v1/channels/x/challenges?wait=abc", r.url))
                .bearer_auth("t"),
            StatusCode::BAD_REQUEST,
        ),
        (
            r.http
                .post(format!("{}/v1/enrollments", r.url))
                .header("content-type", "application/json")
                .body(big),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            r.http.get(format!("{}/v1/no-such-thing", r.url)),
            StatusCode::NOT_FOUND,
        ),
        (
            r.http.patch(format!("{}/v1/enrollments", r.url)),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            r.http.post(format!("{}/v1/enrollments", r.url)).body("{"),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (req, status) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), status);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
}

/// On Redis: every relay stops and new ones start, then Redis itself is
/// killed and restarted from its append-only file; the device's channel
/// works throughout, and Redis holds no token.
async fn channels_survive_restarts_of_every_relay_and_of_redis() {
    let mut redis = RedisServer::start(&[]);
    let (result, device) = start_on(&redis.url()).enroll_device().await;
    let post_and_list = async |r: &RelayProc, fill: u8| {
        let id = b64(32, fill);
        let posted = r
            .post_challenge(&result.channel_id, &result.helper_token, &id, 60)
            .await;
        assert_eq!(posted, StatusCode::CREATED);
        let (_, _, ids) = poll_pending(r, &device, None, 0).await;
        assert!(ids.contains(&id));
    };
    post_and_list(&start_on(&redis.url()), 3).await;
    redis.kill();
    redis.restart();
    post_and_list(&start_on(&redis.url()), 4).await;
    let stored = redis.cli(&["HGETALL", &format!("pushmfa:ch:{}", result.channel_id)]);
    assert!(stored.contains("helper"), "{stored}");
    assert!(
        !stored.contains(&result.helper_token) && !stored.contains(&device.device_token),
        "tokens stored in clear"
    );
}

/// Protocol 2 bodies: `sealed` alone, of a sealed length, stored and
/// handed on as it came; never mixed with clear fields.
async fn sealed_challenges_and_answers_pass_through_opaque() {
    let r = start(None);
    let (result, device) = r.enroll_device().await;
    let ch = &result.channel_id;
    let url = format!("{}/v1/channels/{ch}/challenges", r.url);
    let post = |body: serde_json::Value| {
        r.http
            .post(&url)
            .bearer_auth(&result.helper_token)
            .json(&body)
            .send()
    };
    let short = b64(SEALED_LENS[0] - 1, 3);
    let mixed = serde_json::json!({"id": b64(32, 1), "expires_in": 60, "sealed": b64(SEALED_LENS[0], 3), "challenge": b64(10, 1)});
    for (name, body) in [
        (
            "short",
            serde_json::json!({"id": b64(32, 1), "expires_in": 60, "sealed": short}),
        ),
        ("mixed", mixed),
        (
            "not base64",
            serde_json::json!({"id": b64(32, 1), "expires_in": 60, "sealed": "!!"}),
        ),
    ] {
        let resp = post(body).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{name}");
        let e: ErrorBody = resp.json().await.unwrap();
        assert!(
            e.error.starts_with("sealed") || e.error.starts_with("challenge"),
            "{name}: {}",
            e.error
        );
    }
    for (i, len) in SEALED_LENS.into_iter().enumerate() {
        let id = b64(32, 10 + i as u8);
        let body = serde_json::json!({"id": id, "expires_in": 60, "sealed": b64(len, 7)});
        assert_eq!(post(body).await.unwrap().status(), StatusCode::CREATED);
        let list: PendingList = r
            .http
            .get(format!("{url}?wait=0"))
            .bearer_auth(&device.device_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let p = list.challenges.iter().find(|c| c.id == id).unwrap();
        assert_eq!(p.sealed.as_deref(), Some(b64(len, 7).as_str()));
        assert!(p.challenge.is_empty() && p.signature.is_empty());
        let answer = |body: serde_json::Value| {
            r.http
                .post(format!("{url}/{id}/response"))
                .bearer_auth(&device.device_token)
                .json(&body)
                .send()
        };
        let bad = serde_json::json!({"sealed": b64(len + 1, 8)});
        assert_eq!(answer(bad).await.unwrap().status(), StatusCode::BAD_REQUEST);
        let good = serde_json::json!({"sealed": b64(SEALED_LENS[0], 8)});
        assert_eq!(answer(good).await.unwrap().status(), StatusCode::NO_CONTENT);
        let got: ChallengeResponse = r
            .http
            .get(format!("{url}/{id}/response?wait=0"))
            .bearer_auth(&result.helper_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got.sealed.as_deref(), Some(b64(SEALED_LENS[0], 8).as_str()));
        assert!(got.response.is_empty() && got.signature.is_empty());
    }
}

/// Runs each case twice: on the embedded store and on a private Redis.
macro_rules! both_stores {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $case() {
                super::$case().await
            })*
        }
        mod redis {
            $(#[tokio::test]
            async fn $case() {
                super::ON_REDIS.scope(true, super::$case()).await
            })*
        }
    };
}

both_stores!(
    health_and_help,
    long_polls_wake_at_once_on_both_sides,
    tokens_are_checked_per_role,
    garbage_truncated_and_oversized_bodies_are_rejected,
    limits_expiry_and_duplicates,
    channels_survive_a_restart_and_corrupt_data_is_refused,
    answered_challenges_do_not_block_new_ones,
    a_refused_answer_opens_the_challenge_again_and_says_why,
    the_host_can_withdraw_a_challenge_and_only_the_host,
    a_device_waits_for_what_is_new_with_a_cursor,
    the_app_is_served_with_a_strict_policy,
    web_push_subscriptions_go_only_to_push_services,
    every_error_answer_is_a_json_error_body,
    sealed_challenges_and_answers_pass_through_opaque,
);
