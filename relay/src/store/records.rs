//! The records both stores keep and the answers their operations give.

use crate::tokens::TokenHash;
use pushmfa_protocol::relay_api::{
    ChallengeResponse, EnrollmentOutcome, EnrollmentResult, PendingChallenge, PostChallenge,
    PushSubscription,
};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

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
    /// Random per state (a restarted memory store, a flushed Redis), so a
    /// cursor from another state never matches.
    pub epoch: String,
    pub version: u64,
    pub challenges: Vec<PendingChallenge>,
}

impl PendingView {
    /// The view of `pending` at `now_ms`: live, unanswered challenges.
    pub(crate) fn of<'a>(
        epoch: String,
        version: u64,
        pending: impl Iterator<Item = &'a Pending>,
        now_ms: u64,
    ) -> Self {
        let challenges = pending
            .filter(|p| !p.answered && p.expires_ms > now_ms)
            .map(|p| PendingChallenge {
                id: p.record.id.clone(),
                expires_in: (p.expires_ms - now_ms) / 1000,
                challenge: p.record.challenge.clone(),
                signature: p.record.signature.clone(),
                sealed: p.record.sealed.clone(),
                refused: p.refused.clone(),
            })
            .collect();
        PendingView {
            epoch,
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

mod hash_b64 {
    use crate::tokens::TokenHash;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(h: &TokenHash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TokenHash, D::Error> {
        let s = String::deserialize(d)?;
        crate::store::records::decode_hash(&s)
            .ok_or_else(|| D::Error::custom("malformed token hash"))
    }
}

mod opt_hash_b64 {
    use crate::tokens::TokenHash;
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
            Some(s) => crate::store::records::decode_hash(&s)
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
