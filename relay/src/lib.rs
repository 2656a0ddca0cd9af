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
pub mod serve;
pub mod store;
pub mod tls;
pub mod wakeups;
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
use pushmfa_config::relay::{AddrBlock, RelayLimits};
use pushmfa_protocol::relay_api::*;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{ChannelKeys, Rate, Store, Unavailable};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub data_dir: Option<PathBuf>,
    /// `memory` (this process; channels in `data_dir`), or a Redis URL
    /// shared by several relays (see [`store::redis::parse_url`]).
    pub store: String,
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
            store: "memory".into(),
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
    #[error("{0}")]
    Store(String),
}

type TokenHash = [u8; 32];

fn hash_token(token: &str) -> TokenHash {
    let mut h = [0u8; 32];
    h.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    h
}

pub struct Relay {
    cfg: RelayConfig,
    store: Store,
    polls: PollCounts,
    rng: SystemRandom,
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

/// The store is down: nothing was decided, the client may try again soon.
impl From<Unavailable> for ApiError {
    fn from(_: Unavailable) -> ApiError {
        // Not logged per request: the store logs its outages once.
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            "the relay's store is unavailable; try again shortly",
        )
        .retry_after(1)
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A random base64url string of `len` bytes.
fn random_b64(rng: &SystemRandom, len: usize) -> Result<String, RelayError> {
    let mut b = vec![0u8; len];
    rng.fill(&mut b).map_err(|_| RelayError::Random)?;
    Ok(B64.encode(b))
}

impl Relay {
    /// Opens a relay on the embedded store (channels loaded from
    /// `data_dir`); see [`Relay::connect`] for Redis.
    pub fn open(cfg: RelayConfig) -> Result<Relay, RelayError> {
        if cfg.store != "memory" {
            return Err(RelayError::Store(format!(
                "store {:?}: Relay::open runs the memory store only",
                cfg.store
            )));
        }
        let rng = SystemRandom::new();
        let memory = store::memory::MemoryStore::open(cfg.data_dir.clone(), random_b64(&rng, 8)?)
            .map_err(RelayError::Persist)?;
        let pusher = webpush::Pusher::open(
            cfg.data_dir.as_deref(),
            &cfg.web_push_contact,
            &cfg.web_push_allow,
        )
        .map_err(RelayError::WebPush)?;
        Ok(Relay::assemble(cfg, Store::Memory(memory), pusher, rng))
    }

    /// Opens a relay on the store `cfg.store` names. On Redis, the epoch
    /// and the VAPID key are shared by every instance (the first one's).
    pub async fn connect(cfg: RelayConfig) -> Result<Relay, RelayError> {
        if cfg.store == "memory" {
            return Relay::open(cfg);
        }
        let config = store::redis::parse_url(&cfg.store).map_err(RelayError::Store)?;
        let rng = SystemRandom::new();
        let mut redis = store::redis::RedisStore::connect(config)
            .await
            .map_err(RelayError::Store)?;
        let unavailable = |e: Unavailable| RelayError::Store(e.to_string());
        redis
            .adopt_epoch(&random_b64(&rng, 8)?)
            .await
            .map_err(unavailable)?;
        let fresh = B64.encode(webpush::new_key().map_err(RelayError::WebPush)?);
        let key = redis
            .shared_value("vapid", &fresh)
            .await
            .map_err(unavailable)?;
        let key = B64
            .decode(key)
            .map_err(|_| RelayError::WebPush("the shared VAPID key is not base64url".into()))?;
        let pusher = webpush::Pusher::with_key(&key, &cfg.web_push_contact, &cfg.web_push_allow)
            .map_err(RelayError::WebPush)?;
        Ok(Relay::assemble(cfg, Store::Redis(redis), pusher, rng))
    }

    fn assemble(
        cfg: RelayConfig,
        store: Store,
        pusher: webpush::Pusher,
        rng: SystemRandom,
    ) -> Relay {
        Relay {
            polls: PollCounts::default(),
            cfg,
            store,
            rng,
            pusher: Arc::new(pusher),
        }
    }

    /// The ETag of a channel's pending list at `version`.
    fn etag(&self, version: u64) -> String {
        format!("\"{}.{version}\"", self.store.epoch())
    }

    fn random_id(&self, len: usize) -> ApiResult<String> {
        random_b64(&self.rng, len)
            .map_err(|_| err(StatusCode::INTERNAL_SERVER_ERROR, "no randomness"))
    }

    /// The per-token rate limit (keyed by the token's hash: a shared
    /// store never holds a token).
    async fn rate(&self, token: &str) -> ApiResult<()> {
        let key = format!("t:{}", B64.encode(hash_token(token)));
        self.limit(
            &key,
            Rate {
                per_sec: self.cfg.rate_per_sec,
                burst: self.cfg.burst,
            },
            "rate limit exceeded; slow down",
        )
        .await
    }

    /// The rate limit on the anonymous calls of one kind from the
    /// request's client address.
    async fn rate_anonymous(&self, kind: &str, client: std::net::IpAddr) -> ApiResult<()> {
        let rate = Rate {
            per_sec: self.cfg.limits.anonymous_per_minute / 60.0,
            burst: self.cfg.limits.anonymous_burst,
        };
        self.limit(
            &format!("{kind}:{client}"),
            rate,
            "too many enrollment requests from your address; try again later",
        )
        .await
    }

    async fn limit(&self, key: &str, rate: Rate, why: &str) -> ApiResult<()> {
        match self.store.rate(key, rate).await? {
            Ok(()) => Ok(()),
            Err(wait) => Err(err(StatusCode::TOO_MANY_REQUESTS, why)
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

    /// Drops expired challenges and enrollment slots (Redis expires its
    /// own keys).
    pub fn sweep(&self) {
        if let Store::Memory(m) = &self.store {
            m.sweep();
        }
    }

    /// Long-poll subscriptions open in this process (for measurements).
    pub fn waiting_topics(&self) -> usize {
        self.store.hub().len()
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

/// Checks the token for `role` on `channel` (and the rate limit); the
/// channel's keys.
async fn authorize(
    relay: &Relay,
    channel: &str,
    role: Role,
    token: &str,
) -> ApiResult<ChannelKeys> {
    let keys = relay
        .store
        .channel(channel)
        .await?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such channel"))?;
    let expected = if role == Role::Helper {
        &keys.helper
    } else {
        &keys.device
    };
    if !token_matches(expected, token) {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            "wrong token for this channel",
        ));
    }
    relay.rate(token).await?;
    Ok(keys)
}

/// One long-poll's wait: subscribed to its topic before the first look
/// at the store, so no change slips between a look and the wait.
///
/// Handlers drop the request's headers before waiting: their values share
/// hyper's 8 KB read buffer, which hyper can then reuse for its
/// keep-alive read instead of allocating a second one for the minute the
/// poll lasts.
struct LongPoll<'a> {
    relay: &'a Relay,
    token: &'a str,
    waiter: wakeups::Waiter,
    deadline: Instant,
    /// Taken at the first wait (an answer found at once holds none).
    slot: Option<clients::PollSlot>,
}

impl<'a> LongPoll<'a> {
    fn start(relay: &'a Relay, token: &'a str, topic: wakeups::Topic, wait: Duration) -> Self {
        LongPoll {
            relay,
            token,
            waiter: relay.store.hub().subscribe(topic),
            deadline: Instant::now() + wait,
            slot: None,
        }
    }

    /// Waits for the next touch of the topic: `false` once the wait is over.
    async fn next(&mut self) -> ApiResult<bool> {
        if self.slot.is_none() {
            self.slot = Some(self.relay.poll_slot(self.token)?);
        }
        Ok(
            tokio::time::timeout_at(self.deadline.into(), self.waiter.touched())
                .await
                .is_ok(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::{Path, Query};

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
