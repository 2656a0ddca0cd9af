//! The relay's HTTP API, driven through its real router in-process.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http_body_util::BodyExt;
use pushmfa_relay::{Relay, RelayConfig};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

/// A relay with one enrolled channel, so authenticated routes get past the
/// token check and parse their bodies.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    enrollment: String,
    channel: String,
    device_token: String,
    helper_token: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let relay = Relay::open(RelayConfig {
            // The fuzzer sends thousands of requests a second on one token.
            rate_per_sec: 1e12,
            burst: 1e12,
            // Small, so the fuzzer reaches the cap's 503 at once rather
            // than after 10,000 creates (two slots are the fixture's own).
            max_enrollments: 8,
            // All in-process requests share one address; let them through
            // to the slot cap.
            limits: pushmfa_config::relay::RelayLimits {
                anonymous_per_minute: 6e13,
                anonymous_burst: 1e12,
                open_enrollments_per_address: 1_000_000,
                ..Default::default()
            },
            ..RelayConfig::default()
        })
        .expect("relay");
        let router = pushmfa_relay::router(Arc::new(relay));
        let call = |method, uri: String, body: String, token: Option<&str>| {
            let (status, body) = runtime.block_on(send(&router, method, &uri, body, token));
            assert!(status.is_success(), "{uri}: {status} {body}");
            serde_json::from_str::<serde_json::Value>(&body).expect("json")
        };
        let created = call(Method::POST, "/v1/enrollments".into(), "{}".into(), None);
        let enrollment = created["enrollment_id"].as_str().expect("id").to_owned();
        let mut key = vec![4u8];
        key.extend([7u8; 64]);
        let registration = serde_json::json!({
            "public_key": B64.encode(&key),
            "device_name": "fuzz",
            "mac": B64.encode([1u8; 32]),
        });
        let channel = call(
            Method::POST,
            format!("/v1/enrollments/{enrollment}/device"),
            registration.to_string(),
            None,
        );
        let result = call(
            Method::GET,
            format!("/v1/enrollments/{enrollment}?wait=0"),
            String::new(),
            Some(created["helper_token"].as_str().expect("token")),
        );
        // A second enrollment stays open for the registration route.
        let open = call(Method::POST, "/v1/enrollments".into(), "{}".into(), None);
        Fixture {
            enrollment: open["enrollment_id"].as_str().expect("id").to_owned(),
            channel: channel["channel_id"].as_str().expect("channel").to_owned(),
            device_token: channel["device_token"].as_str().expect("token").to_owned(),
            helper_token: result["helper_token"].as_str().expect("token").to_owned(),
            runtime,
            router,
        }
    })
}

async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    body: impl Into<Body>,
    token: Option<&str>,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request");
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// First byte picks the route (and which token is presented), the rest is
/// the request body. The relay must answer every body with a 2xx or 4xx
/// carrying `{"error": ...}`: never a panic, never a 5xx, except the 503
/// that says the relay's open-enrollment cap is reached.
pub fn relay_request(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let ch = &f.channel;
    let (method, uri, token) = match pick % 8 {
        0 => (Method::POST, "/v1/enrollments".to_owned(), None),
        1 => (
            Method::POST,
            format!("/v1/enrollments/{}/device", f.enrollment),
            None,
        ),
        2 => (
            Method::POST,
            format!("/v1/channels/{ch}/challenges"),
            Some(&f.helper_token),
        ),
        3 => (
            Method::POST,
            format!("/v1/channels/{ch}/challenges/{}/response", "A".repeat(43)),
            Some(&f.device_token),
        ),
        4 => (
            Method::PUT,
            format!("/v1/channels/{ch}/push"),
            Some(&f.device_token),
        ),
        5 => (
            Method::GET,
            format!("/v1/channels/{ch}/challenges?wait=0"),
            Some(&f.device_token),
        ),
        // Bodies on the wrong token: refused before parsing.
        6 => (
            Method::POST,
            format!("/v1/channels/{ch}/challenges"),
            Some(&f.device_token),
        ),
        _ => (
            Method::POST,
            format!("/v1/channels/{ch}/challenges/{}/response", "A".repeat(43)),
            None,
        ),
    };
    let (status, text) = f.runtime.block_on(send(
        &f.router,
        method,
        &uri,
        body.to_vec(),
        token.map(String::as_str),
    ));
    let at_cap = pick % 8 == 0 && status == StatusCode::SERVICE_UNAVAILABLE;
    assert!(
        status.is_success() || status.is_client_error() || at_cap,
        "{uri}: {status} {text}"
    );
    if !status.is_success() {
        let v: serde_json::Value = serde_json::from_str(&text).expect("error body is JSON");
        assert!(v["error"].is_string(), "{text}");
    }
}
