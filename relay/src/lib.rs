//! The relay's state and HTTP API.
//!
//! Everything here is untrusted by the hosts: records are opaque strings,
//! tokens are stored only as SHA-256 hashes, and nothing the relay does can
//! produce a valid host or device signature.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod args;
mod channels;
mod clients;
mod enrollments;
mod limits;
mod persist;
pub mod serve;
pub mod tls;
pub mod webapp;
pub mod webpush;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use clients::PollCounts;
use limits::RateLimiter;
use pushmfa_config::relay::{AddrBlock, RelayLimits};
use pushmfa_protocol::relay_api::*;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub data_dir: Option<PathBuf>,
    /// Unanswered challenges one channel may hold.
    pub max_pending_per_channel: usize,
    /// Open enrollment slots in all.
    pub max_enrollments: usize,
    /// Requests per second per token (sustained) and burst.
    pub rate_per_sec: f64,
    pub burst: f64,
    /// The VAPID `sub` claim: how a push service reaches the admin.
    pub web_push_contact: String,
    /// Push service origins allowed besides the browsers' own.
    pub web_push_allow: Vec<String>,
    /// Another origin serves the web app: the relay serves none and allows
    /// that origin to call the API (CORS).
    pub app_origin: Option<String>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<AddrBlock>,
    pub limits: RelayLimits,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            data_dir: None,
            max_pending_per_channel: 16,
            max_enrollments: 10_000,
            rate_per_sec: 20.0,
            burst: 100.0,
            web_push_contact: "mailto:root@localhost".into(),
            web_push_allow: Vec::new(),
            app_origin: None,
            trusted_proxies: Vec::new(),
            limits: RelayLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{0}")]
    Persist(String),
    #[error("the system's random number generator failed")]
    Random,
    #[error("web push: {0}")]
    WebPush(String),
}

type TokenHash = [u8; 32];

fn hash_token(token: &str) -> TokenHash {
    let mut h = [0u8; 32];
    h.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    h
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Pending {
    record: PostChallenge,
    expires: Instant,
    /// A device answered and the helper has not refused the answer: hidden
    /// from devices, further answers get 409.
    answered: bool,
    /// Why the helper refused the last answer (shown to devices).
    refused: Option<String>,
    response: watch::Sender<Option<ChallengeResponse>>,
}

pub(crate) struct Channel {
    pub helper_token: TokenHash,
    pub device_token: TokenHash,
    pub created_at: u64,
    pending: HashMap<String, Pending>,
    /// Bumped whenever the device's pending list changes (a challenge
    /// arrives, is answered or withdrawn): wakes long-polling devices and
    /// is their cursor (the list's ETag).
    changes: watch::Sender<u64>,
    /// Where to send a Web Push wake-up when a challenge arrives.
    pub push: Option<PushSubscription>,
}

impl Channel {
    pub(crate) fn new(
        helper_token: TokenHash,
        device_token: TokenHash,
        created_at: u64,
    ) -> Channel {
        Channel {
            helper_token,
            device_token,
            created_at,
            pending: HashMap::new(),
            changes: watch::channel(0).0,
            push: None,
        }
    }
}

#[derive(Default)]
struct Inner {
    channels: HashMap<String, Channel>,
    enrollments: HashMap<String, enrollments::Enrollment>,
}

pub struct Relay {
    cfg: RelayConfig,
    inner: Mutex<Inner>,
    limiter: RateLimiter,
    /// Anonymous calls per client address.
    anonymous: RateLimiter,
    polls: PollCounts,
    rng: SystemRandom,
    /// Random per process: a cursor from before a restart never matches.
    epoch: String,
    pusher: Arc<webpush::Pusher>,
}

/// An error answer: status code plus `{"error": ...}`, and for the
/// answers that say "later" (429, 503) how many seconds later.
#[derive(Debug)]
pub struct ApiError(StatusCode, String, Option<u64>);

impl ApiError {
    fn retry_after(mut self, secs: u64) -> ApiError {
        self.2 = Some(secs.max(1));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.0, Json(ErrorBody { error: self.1 })).into_response();
        if let Some(secs) = self.2 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        resp
    }
}

fn err(status: StatusCode, msg: impl Into<String>) -> ApiError {
    ApiError(status, msg.into(), None)
}

type ApiResult<T> = Result<T, ApiError>;

impl Relay {
    /// Opens the relay, loading persisted channels from `data_dir`.
    pub fn open(cfg: RelayConfig) -> Result<Relay, RelayError> {
        let mut inner = Inner::default();
        if let Some(dir) = &cfg.data_dir {
            inner.channels = persist::load(dir).map_err(RelayError::Persist)?;
        }
        let pusher = webpush::Pusher::open(
            cfg.data_dir.as_deref(),
            &cfg.web_push_contact,
            &cfg.web_push_allow,
        )
        .map_err(RelayError::WebPush)?;
        let rng = SystemRandom::new();
        let mut epoch = [0u8; 8];
        rng.fill(&mut epoch).map_err(|_| RelayError::Random)?;
        Ok(Relay {
            limiter: RateLimiter::new(cfg.rate_per_sec, cfg.burst),
            anonymous: RateLimiter::new(
                cfg.limits.anonymous_per_minute / 60.0,
                cfg.limits.anonymous_burst,
            ),
            polls: PollCounts::default(),
            cfg,
            inner: Mutex::new(inner),
            rng,
            epoch: B64.encode(epoch),
            pusher: Arc::new(pusher),
        })
    }

    /// The ETag of a channel's pending list after `changes` changes.
    fn etag(&self, changes: u64) -> String {
        format!("\"{}.{changes}\"", self.epoch)
    }

    fn lock(&self) -> ApiResult<MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| err(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
    }

    fn random_id(&self, len: usize) -> ApiResult<String> {
        let mut b = vec![0u8; len];
        self.rng
            .fill(&mut b)
            .map_err(|_| err(StatusCode::INTERNAL_SERVER_ERROR, "no randomness"))?;
        Ok(B64.encode(b))
    }

    fn rate(&self, key: &str) -> ApiResult<()> {
        match self.limiter.allow(key) {
            Ok(()) => Ok(()),
            Err(wait) => Err(err(
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit exceeded; slow down",
            )
            .retry_after(wait.as_secs_f64().ceil() as u64)),
        }
    }

    /// The rate limit on anonymous calls of one kind from the request's
    /// client address.
    fn rate_anonymous(&self, kind: &str, client: std::net::IpAddr) -> ApiResult<()> {
        match self.anonymous.allow(&format!("{kind}:{client}")) {
            Ok(()) => Ok(()),
            Err(wait) => Err(err(
                StatusCode::TOO_MANY_REQUESTS,
                "too many enrollment requests from your address; try again later",
            )
            .retry_after(wait.as_secs_f64().ceil() as u64)),
        }
    }

    /// The request's client address (see [`clients::client_addr`]).
    fn client(&self, headers: &HeaderMap) -> std::net::IpAddr {
        clients::client_addr(&self.cfg.trusted_proxies, headers)
    }

    /// A place for one more long-poll by `token`.
    fn poll_slot(&self, token: &str) -> ApiResult<clients::PollSlot> {
        self.polls
            .take(hash_token(token), self.cfg.limits.long_polls_per_token)
    }

    fn persist(&self, inner: &Inner) -> ApiResult<()> {
        match &self.cfg.data_dir {
            Some(dir) => persist::save(dir, &inner.channels)
                .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, format!("storage: {e}"))),
            None => Ok(()),
        }
    }

    /// Drops expired challenges and enrollment slots.
    pub fn sweep(&self) {
        let now = Instant::now();
        if let Ok(mut inner) = self.inner.lock() {
            inner.enrollments.retain(|_, e| e.expires > now);
            for ch in inner.channels.values_mut() {
                ch.pending.retain(|_, p| p.expires > now);
            }
        }
    }
}

/// Runs [`Relay::sweep`] every few seconds (expiry is also checked on access).
pub async fn sweep_forever(relay: Arc<Relay>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        relay.sweep();
    }
}

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

fn bearer(headers: &HeaderMap) -> ApiResult<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .ok_or_else(|| err(StatusCode::UNAUTHORIZED, "missing bearer token"))
}

/// Whether `presented` is the token `expected` hashes; a match also marks
/// the request's connection as authenticated (see [`serve`]).
fn token_matches(expected: &TokenHash, presented: &str) -> bool {
    let ok: bool = expected.ct_eq(&hash_token(presented)).into();
    if ok {
        serve::authenticated();
    }
    ok
}

/// Parses a JSON body, answering 400 with the reason (axum's own rejection
/// would be 422 or 415 with a text body).
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| err(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
}

fn b64_field(name: &str, value: &str, len: Option<usize>) -> ApiResult<Vec<u8>> {
    let bytes = B64
        .decode(value)
        .map_err(|_| err(StatusCode::BAD_REQUEST, format!("{name}: not base64url")))?;
    match len {
        Some(n) if bytes.len() != n => Err(err(
            StatusCode::BAD_REQUEST,
            format!("{name}: must be {n} bytes"),
        )),
        _ => Ok(bytes),
    }
}

#[derive(Deserialize)]
struct WaitQuery {
    wait: Option<u64>,
}

fn wait_for(q: &WaitQuery) -> Duration {
    Duration::from_secs(q.wait.unwrap_or(0).min(MAX_WAIT_SECS))
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Helper,
    Device,
}

/// Checks the token for `role` on `channel` (and the rate limit).
fn authorize(
    relay: &Relay,
    inner: &Inner,
    channel: &str,
    role: Role,
    token: &str,
) -> ApiResult<()> {
    let ch = inner
        .channels
        .get(channel)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such channel"))?;
    let expected = if role == Role::Helper {
        &ch.helper_token
    } else {
        &ch.device_token
    };
    if !token_matches(expected, token) {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            "wrong token for this channel",
        ));
    }
    relay.rate(token)
}
