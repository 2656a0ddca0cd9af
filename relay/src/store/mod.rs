//! Where the relay keeps its state: in this process (one relay), or in
//! Redis (several relays behind a load balancer sharing one state).
//!
//! Both stores offer the same operations, each one atomic: the handlers
//! check tokens and shape answers, the store decides "answer once",
//! "register once" and the caps. Every change touches its [`Topic`] so
//! that long-polls (on any instance) look again.

mod buckets;
pub mod memory;
mod persist;
pub mod redis;

use crate::TokenHash;
use crate::wakeups::Hub;
use pushmfa_protocol::relay_api::{
    ChallengeResponse, EnrollmentOutcome, EnrollmentResult, PendingChallenge, PostChallenge,
    PushSubscription,
};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the stores' one clock (several
/// instances share expiry times, so it cannot be a process's `Instant`).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The store is not there (Redis down or unreachable): the request may be
/// tried again shortly. Nothing is decided on it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct Unavailable(pub String);

pub type StoreResult<T> = Result<T, Unavailable>;

/// The two token hashes of a device channel.
#[derive(Debug, Clone, Copy)]
pub struct ChannelKeys {
    pub helper: TokenHash,
    pub device: TokenHash,
}

/// A challenge as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub record: PostChallenge,
    pub expires_ms: u64,
    /// A device answered and the helper has not refused the answer: hidden
    /// from devices, further answers get 409.
    pub answered: bool,
    /// Why the helper refused the last answer (shown to devices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The answer, until the helper collects it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ChallengeResponse>,
}

/// A device's view of its channel: the version (bumped on every change to
/// the list, the cursor of long-polls) and the unanswered challenges.
pub struct PendingView {
    pub version: u64,
    pub challenges: Vec<PendingChallenge>,
}

impl PendingView {
    /// The view of `pending` at `now_ms`: live, unanswered challenges.
    fn of<'a>(version: u64, pending: impl Iterator<Item = &'a Pending>, now_ms: u64) -> Self {
        let challenges = pending
            .filter(|p| !p.answered && p.expires_ms > now_ms)
            .map(|p| PendingChallenge {
                id: p.record.id.clone(),
                expires_in: (p.expires_ms - now_ms) / 1000,
                challenge: p.record.challenge.clone(),
                signature: p.record.signature.clone(),
                refused: p.refused.clone(),
            })
            .collect();
        PendingView {
            version,
            challenges,
        }
    }
}

/// What posting a challenge did.
#[derive(Debug)]
pub enum Posted {
    /// Stored; wake the device through this subscription, if any.
    Stored(Option<PushSubscription>),
    NoChannel,
    /// The id is taken on this channel.
    Duplicate,
    /// The channel holds its cap of unanswered challenges.
    Full,
}

/// What a change to one challenge did.
#[derive(Debug, PartialEq, Eq)]
pub enum Changed {
    Done,
    /// No such channel or challenge (or it expired).
    NotFound,
    /// Answering an answered challenge, or refusing an unanswered one.
    Conflict,
}

/// What the helper finds when it looks for an answer.
#[derive(Debug)]
pub enum Collected {
    Answer(ChallengeResponse),
    Nothing,
    NotFound,
}

/// An open enrollment slot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Slot {
    #[serde(with = "hash_b64")]
    pub helper_token: TokenHash,
    pub expires_ms: u64,
    pub client: IpAddr,
    /// The registered device's token (its new channel's), once registered.
    #[serde(default, with = "opt_hash_b64")]
    pub device_token: Option<TokenHash>,
    #[serde(default)]
    pub result: Option<EnrollmentResult>,
    #[serde(default)]
    pub outcome: Option<EnrollmentOutcome>,
}

/// What opening a slot did.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    Done,
    /// The address holds its cap of open slots.
    TooManyHere,
    /// The relay holds its cap of open slots.
    Full,
}

/// Caps on opening a slot.
#[derive(Debug, Clone, Copy)]
pub struct SlotCaps {
    pub per_address: usize,
    pub total: usize,
}

/// A rate-limit bucket: sustained requests per second, and the burst.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

/// After a registration, time left for the host to post its verdict and
/// for the device to collect it, even if the slot was about to expire.
pub const OUTCOME_GRACE_MS: u64 = 120_000;

/// The relay's store. (One per process: the size difference is moot.)
#[allow(clippy::large_enum_variant)]
pub enum Store {
    Memory(memory::MemoryStore),
    Redis(redis::RedisStore),
}

/// Calls the store's own method. The Redis client's futures are several
/// KB; boxed, they take heap only while a call is in flight, instead of
/// inflating every request's future (a long-poll's lives for a minute).
macro_rules! each {
    ($self:ident . $m:ident ( $($a:expr),* )) => {
        match $self {
            Store::Memory(s) => s.$m($($a),*),
            Store::Redis(s) => Box::pin(s.$m($($a),*)).await,
        }
    };
}

impl Store {
    /// The hub its changes touch.
    pub fn hub(&self) -> &Hub {
        match self {
            Store::Memory(s) => s.hub(),
            Store::Redis(s) => s.hub(),
        }
    }

    /// Random per state: a cursor from another state (a restarted memory
    /// store, a flushed Redis) never matches.
    pub fn epoch(&self) -> &str {
        match self {
            Store::Memory(s) => s.epoch(),
            Store::Redis(s) => s.epoch(),
        }
    }

    pub async fn channel(&self, id: &str) -> StoreResult<Option<ChannelKeys>> {
        each!(self.channel(id))
    }

    pub async fn delete_channel(&self, id: &str) -> StoreResult<()> {
        each!(self.delete_channel(id))
    }

    /// Sets (or with `None` clears) the channel's Web Push subscription.
    pub async fn set_push(&self, id: &str, sub: Option<&PushSubscription>) -> StoreResult<()> {
        each!(self.set_push(id, sub))
    }

    /// Clears the channel's subscription if it is still `sub` (the push
    /// service said it is gone).
    pub async fn forget_push(&self, id: &str, sub: &PushSubscription) -> StoreResult<()> {
        each!(self.forget_push(id, sub))
    }

    pub async fn post_challenge(
        &self,
        channel: &str,
        pending: Pending,
        max_unanswered: usize,
    ) -> StoreResult<Posted> {
        each!(self.post_challenge(channel, pending, max_unanswered))
    }

    /// Removes challenge `id`; whether it was there.
    pub async fn withdraw(&self, channel: &str, id: &str) -> StoreResult<bool> {
        each!(self.withdraw(channel, id))
    }

    /// The device's view; `None` if there is no such channel.
    pub async fn pending(&self, channel: &str) -> StoreResult<Option<PendingView>> {
        each!(self.pending(channel))
    }

    /// A device's answer: stored once; later ones conflict until the
    /// helper refuses it.
    pub async fn answer(
        &self,
        channel: &str,
        id: &str,
        resp: &ChallengeResponse,
    ) -> StoreResult<Changed> {
        each!(self.answer(channel, id, resp))
    }

    /// The helper refused the answer: the challenge is open again.
    pub async fn refuse(&self, channel: &str, id: &str, reason: &str) -> StoreResult<Changed> {
        each!(self.refuse(channel, id, reason))
    }

    /// Takes the answer to challenge `id` for the helper (delivered once;
    /// the challenge stays, answered, until withdrawn or refused).
    pub async fn collect(&self, channel: &str, id: &str) -> StoreResult<Collected> {
        each!(self.collect(channel, id))
    }

    pub async fn open_slot(&self, id: &str, slot: Slot, caps: SlotCaps) -> StoreResult<Opened> {
        each!(self.open_slot(id, slot, caps))
    }

    /// Slot `id` if it is open.
    pub async fn slot(&self, id: &str) -> StoreResult<Option<Slot>> {
        each!(self.slot(id))
    }

    /// Registers a device in slot `id` and creates its channel, once.
    pub async fn register(
        &self,
        id: &str,
        result: &EnrollmentResult,
        keys: ChannelKeys,
    ) -> StoreResult<Changed> {
        each!(self.register(id, result, keys))
    }

    /// The host's verdict on slot `id`, once, after a registration.
    pub async fn post_outcome(
        &self,
        id: &str,
        outcome: &EnrollmentOutcome,
    ) -> StoreResult<Changed> {
        each!(self.post_outcome(id, outcome))
    }

    /// The slot is done (the device has its verdict).
    pub async fn close_slot(&self, id: &str) -> StoreResult<()> {
        each!(self.close_slot(id))
    }

    /// Takes one request from `key`'s bucket; `Err(wait)` when empty.
    pub async fn rate(&self, key: &str, rate: Rate) -> StoreResult<Result<(), Duration>> {
        each!(self.rate(key, rate))
    }
}

mod hash_b64 {
    use crate::TokenHash;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(h: &TokenHash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TokenHash, D::Error> {
        let s = String::deserialize(d)?;
        super::decode_hash(&s).ok_or_else(|| D::Error::custom("malformed token hash"))
    }
}

mod opt_hash_b64 {
    use crate::TokenHash;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(h: &Option<TokenHash>, s: S) -> Result<S::Ok, S::Error> {
        match h {
            Some(h) => s.serialize_some(&B64.encode(h)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TokenHash>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => super::decode_hash(&s)
                .map(Some)
                .ok_or_else(|| D::Error::custom("malformed token hash")),
            None => Ok(None),
        }
    }
}

/// A token hash from its base64url form.
pub fn decode_hash(s: &str) -> Option<TokenHash> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| <TokenHash>::try_from(b).ok())
}
