//! The relay's shared request services: its configuration and state
//! (the store, rate limits, long-poll counts, Web Push), and what every
//! handler does with a request: read the token, check it, wait.

use crate::clients::{self, PollCounts};
use crate::errors::{ApiResult, err};
use crate::store::{self, ChannelKeys, Rate, Store};
use crate::tokens::{hash_token, token_matches};
use crate::{wakeups, webpush};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_config::relay::{AddrBlock, RelayLimits};
use pushmfa_protocol::relay_api::MAX_WAIT_SECS;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an enrollment slot stays open by default, and at most (also
/// the longest a challenge may live).
pub(crate) const DEFAULT_ENROLL_TTL: u64 = 120;
pub(crate) const MAX_TTL: u64 = 600;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub data_dir: Option<PathBuf>,
    /// `memory` (this process; channels in `data_dir`), or a Redis URL
    /// shared by several relays (see [`store::redis::parse_url`]).
    pub store: String,
    /// A file holding Redis's password (overrides one in `store`).
    pub store_password_file: Option<PathBuf>,
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
            store_password_file: None,
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

pub struct Relay {
    pub(crate) cfg: RelayConfig,
    pub(crate) store: Store,
    polls: PollCounts,
    rng: SystemRandom,
    /// Set at start on the memory store; on Redis, read (or first set)
    /// there when first needed, so a relay starts while Redis is away.
    pusher: tokio::sync::OnceCell<Arc<webpush::Pusher>>,
}

/// Redis's password from `path` (one line; a trailing newline is not part
/// of it).
fn read_password(path: &std::path::Path) -> Result<String, RelayError> {
    let bad =
        |why: String| RelayError::Store(format!("store_password_file {}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() > 1024 {
        return Err(bad("larger than 1024 bytes; not a password file".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() || password.contains('\n') {
        return Err(bad("must hold the password on one line".into()));
    }
    Ok(password.to_owned())
}

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
        Ok(Relay::assemble(
            cfg,
            Store::Memory(memory),
            Some(pusher),
            rng,
        ))
    }

    /// Opens a relay on the store `cfg.store` names. On Redis, the epoch
    /// and the VAPID key are shared by every instance (the first one's).
    pub async fn connect(cfg: RelayConfig) -> Result<Relay, RelayError> {
        if cfg.store == "memory" {
            return Relay::open(cfg);
        }
        let mut config = store::redis::parse_url(&cfg.store).map_err(RelayError::Store)?;
        if let Some(path) = &cfg.store_password_file {
            config.password = Some(read_password(path)?);
        }
        let rng = SystemRandom::new();
        let redis = store::redis::RedisStore::connect(config, random_b64(&rng, 8)?)
            .await
            .map_err(RelayError::Store)?;
        Ok(Relay::assemble(cfg, Store::Redis(redis), None, rng))
    }

    fn assemble(
        cfg: RelayConfig,
        store: Store,
        pusher: Option<webpush::Pusher>,
        rng: SystemRandom,
    ) -> Relay {
        Relay {
            polls: PollCounts::default(),
            cfg,
            store,
            rng,
            pusher: tokio::sync::OnceCell::new_with(pusher.map(Arc::new)),
        }
    }

    /// The ETag of a channel's pending list.
    pub(crate) fn etag(view: &store::PendingView) -> String {
        format!("\"{}.{}\"", view.epoch, view.version)
    }

    /// The Web Push sender. On Redis every instance signs with one VAPID
    /// key (subscriptions are bound to it): the first instance's, kept
    /// there.
    pub(crate) async fn pusher(&self) -> ApiResult<Arc<webpush::Pusher>> {
        let load = async || {
            let Store::Redis(redis) = &self.store else {
                return Err(err(StatusCode::INTERNAL_SERVER_ERROR, "no VAPID key"));
            };
            let fresh =
                webpush::new_key().map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            let key = redis.shared_value("vapid", &B64.encode(fresh)).await?;
            let pusher = B64
                .decode(key)
                .map_err(|_| "the shared VAPID key is not base64url".to_owned())
                .and_then(|k| {
                    webpush::Pusher::with_key(
                        &k,
                        &self.cfg.web_push_contact,
                        &self.cfg.web_push_allow,
                    )
                })
                .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            Ok(Arc::new(pusher))
        };
        self.pusher.get_or_try_init(load).await.cloned()
    }

    pub(crate) fn random_id(&self, len: usize) -> ApiResult<String> {
        random_b64(&self.rng, len)
            .map_err(|_| err(StatusCode::INTERNAL_SERVER_ERROR, "no randomness"))
    }

    /// The per-token rate limit (keyed by the token's hash: a shared
    /// store never holds a token).
    pub(crate) async fn rate(&self, token: &str) -> ApiResult<()> {
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
    pub(crate) async fn rate_anonymous(
        &self,
        kind: &str,
        client: std::net::IpAddr,
    ) -> ApiResult<()> {
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

    pub(crate) async fn limit(&self, key: &str, rate: Rate, why: &str) -> ApiResult<()> {
        match self.store.rate(key, rate).await? {
            Ok(()) => Ok(()),
            Err(wait) => Err(err(StatusCode::TOO_MANY_REQUESTS, why)
                .retry_after(wait.as_secs_f64().ceil() as u64)),
        }
    }

    /// The request's client address (see [`clients::client_addr`]).
    pub(crate) fn client(&self, headers: &HeaderMap) -> std::net::IpAddr {
        clients::client_addr(&self.cfg.trusted_proxies, headers)
    }

    /// A place for one more long-poll by `token`.
    pub(crate) fn poll_slot(&self, token: &str) -> ApiResult<clients::PollSlot> {
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
}

/// Runs [`Relay::sweep`] every few seconds (expiry is also checked on access).
pub async fn sweep_forever(relay: Arc<Relay>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        relay.sweep();
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> ApiResult<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .ok_or_else(|| err(StatusCode::UNAUTHORIZED, "missing bearer token"))
}

/// Parses a JSON body, answering 400 with the reason (axum's own rejection
/// would be 422 or 415 with a text body).
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| err(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
}

pub(crate) fn b64_field(name: &str, value: &str, len: Option<usize>) -> ApiResult<Vec<u8>> {
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
pub(crate) struct WaitQuery {
    pub(crate) wait: Option<u64>,
}

pub(crate) fn wait_for(q: &WaitQuery) -> Duration {
    Duration::from_secs(q.wait.unwrap_or(0).min(MAX_WAIT_SECS))
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Role {
    Helper,
    Device,
}

/// Checks the token for `role` on `channel` (and the rate limit); the
/// channel's keys.
pub(crate) async fn authorize(
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
pub(crate) struct LongPoll<'a> {
    relay: &'a Relay,
    token: &'a str,
    waiter: wakeups::Waiter,
    deadline: Instant,
    /// Taken at the first wait (an answer found at once holds none).
    slot: Option<clients::PollSlot>,
}

impl<'a> LongPoll<'a> {
    pub(crate) fn start(
        relay: &'a Relay,
        token: &'a str,
        topic: wakeups::Topic,
        wait: Duration,
    ) -> Self {
        LongPoll {
            relay,
            token,
            waiter: relay.store.hub().subscribe(topic),
            deadline: Instant::now() + wait,
            slot: None,
        }
    }

    /// Waits for the next touch of the topic: `false` once the wait is over.
    pub(crate) async fn next(&mut self) -> ApiResult<bool> {
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
