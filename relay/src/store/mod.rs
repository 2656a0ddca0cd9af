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
mod records;
pub mod redis;

pub use records::*;

use crate::wakeups::Hub;
use pushmfa_protocol::relay_api::{
    ChallengeResponse, EnrollmentOutcome, EnrollmentResult, PushSubscription,
};
use std::time::Duration;

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
