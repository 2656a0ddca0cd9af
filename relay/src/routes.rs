//! The HTTP API's routes and the layers every request passes: the body
//! read in time, and JSON error bodies.

use crate::api::Relay;
use crate::errors::err;
use crate::{channels, enrollments, webapp};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pushmfa_protocol::relay_api::MAX_BODY_LEN;
use std::sync::Arc;
use std::time::Duration;

pub fn router(relay: Arc<Relay>) -> Router {
    let app_origin = relay.cfg.app_origin.clone();
    let api = api_routes(relay);
    match app_origin {
        None => api.merge(webapp::routes()),
        // Only that origin's pages may call the API from a browser.
        Some(origin) => match origin.parse::<axum::http::HeaderValue>() {
            Ok(o) => api.layer(
                tower_http::cors::CorsLayer::new()
                    .allow_origin(o)
                    .allow_methods([
                        axum::http::Method::GET,
                        axum::http::Method::POST,
                        axum::http::Method::PUT,
                        axum::http::Method::DELETE,
                    ])
                    .allow_headers([
                        header::AUTHORIZATION,
                        header::CONTENT_TYPE,
                        header::IF_NONE_MATCH,
                    ])
                    .expose_headers([header::ETAG])
                    .max_age(Duration::from_secs(600)),
            ),
            Err(_) => api,
        },
    }
}

fn api_routes(relay: Arc<Relay>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/push/key", get(channels::vapid_key))
        .route(
            "/v1/channels/{channel}/push",
            axum::routing::put(channels::put_push).delete(channels::delete_push),
        )
        .route("/v1/enrollments", post(enrollments::create))
        .route("/v1/enrollments/{id}", get(enrollments::wait_registration))
        .route(
            "/v1/enrollments/{id}/device",
            post(enrollments::register_device),
        )
        .route(
            "/v1/enrollments/{id}/outcome",
            post(enrollments::post_outcome).get(enrollments::wait_outcome),
        )
        .route(
            "/v1/channels/{channel}",
            axum::routing::delete(channels::delete_channel),
        )
        .route(
            "/v1/channels/{channel}/challenges",
            post(channels::post_challenge).get(channels::list_challenges),
        )
        .route(
            "/v1/channels/{channel}/challenges/{id}",
            axum::routing::delete(channels::withdraw_challenge),
        )
        .route(
            "/v1/channels/{channel}/challenges/{id}/response",
            post(channels::post_response).get(channels::wait_response),
        )
        .route(
            "/v1/channels/{channel}/challenges/{id}/refusal",
            post(channels::refuse_answer),
        )
        .fallback(|| async { err(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_LEN))
        .layer(axum::middleware::from_fn_with_state(
            relay.clone(),
            body_in_time,
        ))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(relay)
}

/// Reads the whole request body within the header timeout (a client that
/// sends a body a byte at a time holds nothing for long), then hands it on.
async fn body_in_time(
    State(relay): State<Arc<Relay>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let limit = Duration::from_secs(relay.cfg.limits.header_timeout_secs);
    match tokio::time::timeout(limit, axum::body::to_bytes(body, MAX_BODY_LEN)).await {
        Ok(Ok(bytes)) => {
            next.run(axum::extract::Request::from_parts(parts, bytes.into()))
                .await
        }
        Ok(Err(_)) => err(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY_LEN} bytes, or cut short"),
        )
        .into_response(),
        Err(_) => err(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        )
        .into_response(),
    }
}

/// Every error answer is `{"error": ...}`, including the ones axum makes
/// itself (a malformed query, a body over the limit, a wrong method), so a
/// device has one shape to read.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut out = err(status, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{RelayConfig, WaitQuery};
    use axum::extract::{Path, Query};
    use axum::http::HeaderMap;

    /// A long-poll's future lives (boxed by axum) for up to a minute, one
    /// per waiting phone and host: it must not carry the Redis client's
    /// multi-KB futures inline (see `store::each!`).
    #[test]
    fn long_poll_futures_stay_small() {
        let relay = Arc::new(Relay::open(RelayConfig::default()).unwrap());
        let q = || Query(WaitQuery { wait: None });
        let list = channels::list_challenges(
            State(relay.clone()),
            Path("x".into()),
            q(),
            HeaderMap::new(),
        );
        let answer = channels::wait_response(
            State(relay.clone()),
            Path(("x".into(), "y".into())),
            q(),
            HeaderMap::new(),
        );
        let slot = enrollments::wait_registration(
            State(relay.clone()),
            Path("x".into()),
            q(),
            HeaderMap::new(),
        );
        for (what, size) in [
            ("list_challenges", std::mem::size_of_val(&list)),
            ("wait_response", std::mem::size_of_val(&answer)),
            ("wait_registration", std::mem::size_of_val(&slot)),
        ] {
            assert!(size < 2048, "{what}: {size} bytes");
        }
    }
}
