//! The embedded store: state in this process, channels also in
//! `<data>/channels.json` so that enrolled devices survive a restart.

use super::buckets::Buckets;
use super::persist::{self, Durable};
use super::records::*;
use crate::wakeups::Hub;
use crate::wakeups::Topic;
use pushmfa_protocol::relay_api::{
    ChallengeResponse, EnrollmentOutcome, EnrollmentResult, PushSubscription,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

struct Channel {
    durable: Durable,
    pending: HashMap<String, Pending>,
    /// Bumped whenever the device's pending list changes.
    version: u64,
}

#[derive(Default)]
struct State {
    channels: HashMap<String, Channel>,
    slots: HashMap<String, Slot>,
}

pub struct MemoryStore {
    state: Mutex<State>,
    data_dir: Option<PathBuf>,
    buckets: Buckets,
    hub: Hub,
    epoch: String,
}

impl MemoryStore {
    /// Opens the store, loading persisted channels from `data_dir`.
    pub fn open(data_dir: Option<PathBuf>, epoch: String) -> Result<MemoryStore, String> {
        let mut state = State::default();
        if let Some(dir) = &data_dir {
            state.channels = persist::load(dir)?
                .into_iter()
                .map(|(id, durable)| {
                    let ch = Channel {
                        durable,
                        pending: HashMap::new(),
                        version: 0,
                    };
                    (id, ch)
                })
                .collect();
        }
        Ok(MemoryStore {
            state: Mutex::new(state),
            data_dir,
            buckets: Buckets::default(),
            hub: Hub::default(),
            epoch,
        })
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    fn lock(&self) -> StoreResult<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Unavailable("internal error".into()))
    }

    /// Writes the channels out (with a data directory).
    fn save(&self, state: &State) -> StoreResult<()> {
        match &self.data_dir {
            Some(dir) => persist::save(dir, state.channels.iter().map(|(id, c)| (id, &c.durable)))
                .map_err(|e| Unavailable(format!("storage: {e}"))),
            None => Ok(()),
        }
    }

    /// Bumps a channel's version and wakes its waiters.
    fn changed(&self, id: &str, ch: &mut Channel) {
        ch.version += 1;
        self.hub.touch(&Topic::Channel(id.to_owned()));
    }

    /// Drops expired challenges and slots (expiry is also checked on access).
    pub fn sweep(&self) {
        let now = now_ms();
        if let Ok(mut state) = self.state.lock() {
            state.slots.retain(|_, s| s.expires_ms > now);
            for ch in state.channels.values_mut() {
                ch.pending.retain(|_, p| p.expires_ms > now);
            }
        }
    }

    pub fn channel(&self, id: &str) -> StoreResult<Option<ChannelKeys>> {
        Ok(self.lock()?.channels.get(id).map(|c| c.durable.keys))
    }

    pub fn delete_channel(&self, id: &str) -> StoreResult<()> {
        let mut state = self.lock()?;
        if state.channels.remove(id).is_some() {
            self.hub.touch(&Topic::Channel(id.to_owned()));
            self.save(&state)?;
        }
        Ok(())
    }

    pub fn set_push(&self, id: &str, sub: Option<&PushSubscription>) -> StoreResult<()> {
        let mut state = self.lock()?;
        if let Some(ch) = state.channels.get_mut(id) {
            ch.durable.push = sub.cloned();
            self.save(&state)?;
        }
        Ok(())
    }

    pub fn forget_push(&self, id: &str, sub: &PushSubscription) -> StoreResult<()> {
        let mut state = self.lock()?;
        if let Some(ch) = state.channels.get_mut(id) {
            if ch.durable.push.as_ref() == Some(sub) {
                ch.durable.push = None;
                self.save(&state)?;
            }
        }
        Ok(())
    }

    pub fn post_challenge(
        &self,
        channel: &str,
        pending: Pending,
        max_unanswered: usize,
    ) -> StoreResult<Posted> {
        let mut state = self.lock()?;
        let Some(ch) = state.channels.get_mut(channel) else {
            return Ok(Posted::NoChannel);
        };
        let now = now_ms();
        ch.pending.retain(|_, p| p.expires_ms > now);
        if ch.pending.contains_key(&pending.record.id) {
            return Ok(Posted::Duplicate);
        }
        // Answered challenges wait only for the helper to collect them.
        if ch.pending.values().filter(|p| !p.answered).count() >= max_unanswered {
            return Ok(Posted::Full);
        }
        ch.pending.insert(pending.record.id.clone(), pending);
        self.changed(channel, ch);
        Ok(Posted::Stored(ch.durable.push.clone()))
    }

    pub fn withdraw(&self, channel: &str, id: &str) -> StoreResult<bool> {
        let mut state = self.lock()?;
        let Some(ch) = state.channels.get_mut(channel) else {
            return Ok(false);
        };
        let removed = ch.pending.remove(id).is_some();
        if removed {
            self.changed(channel, ch);
        }
        Ok(removed)
    }

    pub fn pending(&self, channel: &str) -> StoreResult<Option<PendingView>> {
        let state = self.lock()?;
        Ok(state.channels.get(channel).map(|ch| {
            PendingView::of(
                self.epoch.clone(),
                ch.version,
                ch.pending.values(),
                now_ms(),
            )
        }))
    }

    /// Applies `change` to live challenge `id`, bumping the version if it
    /// changed anything.
    fn with_live(
        &self,
        channel: &str,
        id: &str,
        change: impl FnOnce(&mut Pending) -> Changed,
    ) -> StoreResult<Changed> {
        let mut state = self.lock()?;
        let Some(ch) = state.channels.get_mut(channel) else {
            return Ok(Changed::NotFound);
        };
        let now = now_ms();
        let Some(p) = ch.pending.get_mut(id).filter(|p| p.expires_ms > now) else {
            return Ok(Changed::NotFound);
        };
        let done = change(p);
        if done == Changed::Done {
            self.changed(channel, ch);
        }
        Ok(done)
    }

    pub fn answer(
        &self,
        channel: &str,
        id: &str,
        resp: &ChallengeResponse,
    ) -> StoreResult<Changed> {
        self.with_live(channel, id, |p| {
            if p.answered {
                return Changed::Conflict;
            }
            p.answered = true;
            p.refused = None;
            p.response = Some(resp.clone());
            Changed::Done
        })
    }

    pub fn refuse(&self, channel: &str, id: &str, reason: &str) -> StoreResult<Changed> {
        self.with_live(channel, id, |p| {
            if !p.answered {
                return Changed::Conflict;
            }
            p.answered = false;
            p.refused = Some(reason.to_owned());
            p.response = None;
            Changed::Done
        })
    }

    pub fn collect(&self, channel: &str, id: &str) -> StoreResult<Collected> {
        let mut state = self.lock()?;
        let now = now_ms();
        let live = state
            .channels
            .get_mut(channel)
            .and_then(|ch| ch.pending.get_mut(id))
            .filter(|p| p.expires_ms > now);
        Ok(match live {
            None => Collected::NotFound,
            Some(p) => p
                .response
                .take()
                .map_or(Collected::Nothing, Collected::Answer),
        })
    }

    pub fn open_slot(&self, id: &str, slot: Slot, caps: SlotCaps) -> StoreResult<Opened> {
        let mut state = self.lock()?;
        let now = now_ms();
        state.slots.retain(|_, s| s.expires_ms > now);
        let here = state
            .slots
            .values()
            .filter(|s| s.client == slot.client)
            .count();
        if here >= caps.per_address {
            return Ok(Opened::TooManyHere);
        }
        if state.slots.len() >= caps.total {
            return Ok(Opened::Full);
        }
        state.slots.insert(id.to_owned(), slot);
        Ok(Opened::Done)
    }

    pub fn slot(&self, id: &str) -> StoreResult<Option<Slot>> {
        let now = now_ms();
        Ok(self
            .lock()?
            .slots
            .get(id)
            .filter(|s| s.expires_ms > now)
            .cloned())
    }

    pub fn register(
        &self,
        id: &str,
        result: &EnrollmentResult,
        keys: ChannelKeys,
    ) -> StoreResult<Changed> {
        let mut state = self.lock()?;
        let now = now_ms();
        let Some(slot) = state.slots.get_mut(id).filter(|s| s.expires_ms > now) else {
            return Ok(Changed::NotFound);
        };
        if slot.device_token.is_some() {
            return Ok(Changed::Conflict);
        }
        slot.device_token = Some(keys.device);
        slot.expires_ms = slot.expires_ms.max(now + OUTCOME_GRACE_MS);
        slot.result = Some(result.clone());
        let durable = Durable {
            keys,
            created_at: now / 1000,
            push: None,
        };
        let channel = Channel {
            durable,
            pending: HashMap::new(),
            version: 0,
        };
        state.channels.insert(result.channel_id.clone(), channel);
        self.save(&state)?;
        self.hub.touch(&Topic::Enrollment(id.to_owned()));
        Ok(Changed::Done)
    }

    pub fn post_outcome(&self, id: &str, outcome: &EnrollmentOutcome) -> StoreResult<Changed> {
        let mut state = self.lock()?;
        let now = now_ms();
        let Some(slot) = state.slots.get_mut(id).filter(|s| s.expires_ms > now) else {
            return Ok(Changed::NotFound);
        };
        if slot.device_token.is_none() || slot.outcome.is_some() {
            return Ok(Changed::Conflict);
        }
        slot.outcome = Some(outcome.clone());
        self.hub.touch(&Topic::Enrollment(id.to_owned()));
        Ok(Changed::Done)
    }

    pub fn close_slot(&self, id: &str) -> StoreResult<()> {
        self.lock()?.slots.remove(id);
        Ok(())
    }

    pub fn rate(&self, key: &str, rate: Rate) -> StoreResult<Result<(), Duration>> {
        Ok(self.buckets.take(key, rate))
    }
}
