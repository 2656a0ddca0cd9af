//! The shared store: state in Redis, so that several relays behind a load
//! balancer act as one. Every change is one Lua script (atomic in Redis:
//! "answer once" and "register once" hold across instances) that also
//! publishes the changed topic; each instance keeps one subscriber
//! connection and fans those messages out to its own waiters, its own
//! changes included (waking them at once as well read everything twice
//! and cost more than the ~0.3 ms it saves: measured, 1,030 -> 1,175
//! approvals/s).
//!
//! Keys (prefix `pushmfa:`), all with expiry except channels:
//! `ch:<id>` hash (helper, device: token hashes; created; push; ver),
//! `pend:<id>` hash (`<challenge>:r|x|a|f|s`: record, expiry, answered,
//! refusal, response), `slot:<id>` hash, `slots` and `slots:<addr>` sorted
//! sets of open slots by expiry, `rate:<key>` buckets, `epoch`, `vapid`.

use crate::store::records::*;
use crate::tokens::TokenHash;
use crate::wakeups::Hub;
use crate::wakeups::Topic;
use fred::prelude::*;
use fred::types::config::ReconnectPolicy;
use fred::types::scripts::Script;
use pushmfa_protocol::relay_api::{
    ChallengeResponse, EnrollmentOutcome, EnrollmentResult, PushSubscription,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod fields;
mod link;

pub use link::start_logging;
use link::{WAKE, log};
mod scripts;
mod url;

use fields::{pending_from_fields, slot_from_fields};

use scripts::Scripts;
pub use url::parse_url;

const PREFIX: &str = "pushmfa:";
/// How long a command may take before the request gets 503.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisStore {
    client: Client,
    /// Cleared the moment the connection drops (before the client itself
    /// notices, commands would wait for their timeout), set on reconnect.
    up: Arc<AtomicBool>,
    hub: Hub,
    /// This process's choice of epoch, set in Redis by whichever
    /// instance reads a pending list first.
    epoch_candidate: String,
    scripts: Scripts,
}

fn down(e: impl std::fmt::Display) -> Unavailable {
    Unavailable(format!("redis: {e}"))
}

fn key(parts: &[&str]) -> String {
    let mut k = PREFIX.to_owned();
    k.push_str(&parts.join(":"));
    k
}

fn b64(h: &TokenHash) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h)
}

fn json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(down)
}

fn text(v: &Value) -> Option<String> {
    v.as_string()
}

fn word(v: &Value) -> String {
    match v {
        Value::Array(a) => a.first().and_then(text).unwrap_or_default(),
        other => text(other).unwrap_or_default(),
    }
}

fn changed(v: &Value) -> Changed {
    match word(v).as_str() {
        "done" => Changed::Done,
        "conflict" => Changed::Conflict,
        _ => Changed::NotFound,
    }
}

impl RedisStore {
    /// Connects (waiting a few seconds; when Redis is not there yet the
    /// relay starts anyway, answers 503 and connects when it can), starts
    /// the subscriber, and reads or sets the shared epoch.
    pub async fn connect(config: Config, epoch_candidate: String) -> Result<RedisStore, String> {
        let config = Config {
            fail_fast: false,
            ..config
        };
        let mut builder = Builder::from_config(config);
        builder
            .set_policy(ReconnectPolicy::new_constant(0, 250))
            .with_connection_config(|c| {
                c.connection_timeout = COMMAND_TIMEOUT;
                c.internal_command_timeout = COMMAND_TIMEOUT;
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = COMMAND_TIMEOUT;
            });
        let client = builder.build().map_err(|e| e.to_string())?;
        let subscriber = builder
            .build_subscriber_client()
            .map_err(|e| e.to_string())?;
        let hub = Hub::default();
        client.connect();
        subscriber.connect();
        let up = Arc::new(AtomicBool::new(true));
        link::report_connection_changes(&client, up.clone());
        link::fan_out(subscriber, hub.clone());
        if tokio::time::timeout(Duration::from_secs(2), client.wait_for_connect())
            .await
            .is_err()
        {
            log("redis: not reachable yet; answering 503 until it is");
        }
        let store = RedisStore {
            client,
            up,
            hub,
            epoch_candidate,
            scripts: Scripts::new(),
        };
        Ok(store)
    }

    /// The value under `name`, set to `fresh` first if there is none
    /// (the first instance's choice is everyone's).
    pub async fn shared_value(&self, name: &str, fresh: &str) -> StoreResult<String> {
        let k = key(&[name]);
        self.ready()?;
        let _: Value = self
            .client
            .set(&k, fresh, None, Some(SetOptions::NX), false)
            .await
            .map_err(down)?;
        let v: Option<String> = self.client.get(&k).await.map_err(down)?;
        v.ok_or_else(|| down(format!("{k} vanished")))
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Fails at once while the connection is down (the relay answers 503
    /// instead of holding the request).
    fn ready(&self) -> StoreResult<()> {
        if self.up.load(Ordering::Relaxed) && self.client.is_connected() {
            Ok(())
        } else {
            Err(Unavailable("redis: not connected".into()))
        }
    }

    async fn run(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> StoreResult<Value> {
        self.ready()?;
        script
            .evalsha_with_reload(&self.client, keys, args)
            .await
            .map_err(down)
    }

    pub async fn channel(&self, id: &str) -> StoreResult<Option<ChannelKeys>> {
        self.ready()?;
        let v: Vec<Option<String>> = self
            .client
            .hmget(key(&["ch", id]), vec!["helper", "device"])
            .await
            .map_err(down)?;
        Ok(match v.as_slice() {
            [Some(h), Some(d)] => decode_hash(h)
                .zip(decode_hash(d))
                .map(|(helper, device)| ChannelKeys { helper, device }),
            _ => None,
        })
    }

    pub async fn delete_channel(&self, id: &str) -> StoreResult<()> {
        self.ready()?;
        let _: i64 = self
            .client
            .del(vec![key(&["ch", id]), key(&["pend", id])])
            .await
            .map_err(down)?;
        self.publish(&Topic::Channel(id.to_owned())).await
    }

    async fn publish(&self, topic: &Topic) -> StoreResult<()> {
        let _: i64 = self
            .client
            .publish(WAKE, topic.wire())
            .await
            .map_err(down)?;
        Ok(())
    }

    pub async fn set_push(&self, id: &str, sub: Option<&PushSubscription>) -> StoreResult<()> {
        let value = match sub {
            Some(s) => json(s)?,
            None => String::new(),
        };
        self.run(&self.scripts.set_push, vec![key(&["ch", id])], vec![value])
            .await
            .map(drop)
    }

    pub async fn forget_push(&self, id: &str, sub: &PushSubscription) -> StoreResult<()> {
        self.run(
            &self.scripts.forget_push,
            vec![key(&["ch", id])],
            vec![json(sub)?],
        )
        .await
        .map(drop)
    }

    /// The keys and the first arguments of a script on one challenge.
    fn challenge_call(channel: &str) -> Vec<String> {
        vec![
            key(&["ch", channel]),
            key(&["pend", channel]),
            WAKE.to_owned(),
        ]
    }

    pub async fn post_challenge(
        &self,
        channel: &str,
        pending: Pending,
        max_unanswered: usize,
    ) -> StoreResult<Posted> {
        let topic = Topic::Channel(channel.to_owned());
        let args = vec![
            pending.record.id.clone(),
            json(&pending.record)?,
            pending.expires_ms.to_string(),
            now_ms().to_string(),
            max_unanswered.to_string(),
            topic.wire(),
        ];
        let v = self
            .run(&self.scripts.post, Self::challenge_call(channel), args)
            .await?;
        Ok(match word(&v).as_str() {
            "ok" => {
                let push = match &v {
                    Value::Array(a) => a.get(1).and_then(text).filter(|s| !s.is_empty()),
                    _ => None,
                };
                Posted::Stored(push.and_then(|s| serde_json::from_str(&s).ok()))
            }
            "duplicate" => Posted::Duplicate,
            "full" => Posted::Full,
            _ => Posted::NoChannel,
        })
    }

    pub async fn withdraw(&self, channel: &str, id: &str) -> StoreResult<bool> {
        let topic = Topic::Channel(channel.to_owned());
        let v = self
            .run(
                &self.scripts.withdraw,
                Self::challenge_call(channel),
                vec![id.to_owned(), topic.wire()],
            )
            .await?;
        let removed = v.as_i64().unwrap_or(0) > 0;
        Ok(removed)
    }

    pub async fn pending(&self, channel: &str) -> StoreResult<Option<PendingView>> {
        let v = self
            .run(
                &self.scripts.pending,
                vec![
                    key(&["ch", channel]),
                    key(&["pend", channel]),
                    key(&["epoch"]),
                ],
                vec![self.epoch_candidate.clone()],
            )
            .await?;
        let Value::Array(parts) = v else {
            return Ok(None);
        };
        let version = parts.first().and_then(Value::as_u64).unwrap_or(0);
        let fields = match parts.get(1) {
            Some(Value::Array(f)) => f.iter().filter_map(text).collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        let pending = pending_from_fields(&fields);
        let epoch = parts.get(2).and_then(text).unwrap_or_default();
        Ok(Some(PendingView::of(
            epoch,
            version,
            pending.values(),
            now_ms(),
        )))
    }

    async fn on_challenge(
        &self,
        script: &Script,
        channel: &str,
        id: &str,
        value: String,
    ) -> StoreResult<Changed> {
        let topic = Topic::Channel(channel.to_owned());
        let args = vec![id.to_owned(), value, now_ms().to_string(), topic.wire()];
        let done = changed(
            &self
                .run(script, Self::challenge_call(channel), args)
                .await?,
        );
        Ok(done)
    }

    pub async fn answer(
        &self,
        channel: &str,
        id: &str,
        resp: &ChallengeResponse,
    ) -> StoreResult<Changed> {
        self.on_challenge(&self.scripts.answer, channel, id, json(resp)?)
            .await
    }

    pub async fn refuse(&self, channel: &str, id: &str, reason: &str) -> StoreResult<Changed> {
        self.on_challenge(&self.scripts.refuse, channel, id, reason.to_owned())
            .await
    }

    pub async fn collect(&self, channel: &str, id: &str) -> StoreResult<Collected> {
        let v = self
            .run(
                &self.scripts.collect,
                vec![key(&["pend", channel])],
                vec![id.to_owned(), now_ms().to_string()],
            )
            .await?;
        Ok(match (word(&v).as_str(), &v) {
            ("answer", Value::Array(a)) => match a.get(1).and_then(text) {
                Some(s) => serde_json::from_str(&s).map_or(Collected::Nothing, Collected::Answer),
                None => Collected::Nothing,
            },
            ("nothing", _) => Collected::Nothing,
            _ => Collected::NotFound,
        })
    }

    pub async fn open_slot(&self, id: &str, slot: Slot, caps: SlotCaps) -> StoreResult<Opened> {
        let client = slot.client.to_string();
        let keys = vec![
            key(&["slot", id]),
            key(&["slots"]),
            key(&["slots", &client]),
        ];
        let args = vec![
            id.to_owned(),
            b64(&slot.helper_token),
            slot.expires_ms.to_string(),
            client,
            now_ms().to_string(),
            caps.per_address.to_string(),
            caps.total.to_string(),
        ];
        let v = self.run(&self.scripts.open_slot, keys, args).await?;
        Ok(match word(&v).as_str() {
            "done" => Opened::Done,
            "here" => Opened::TooManyHere,
            _ => Opened::Full,
        })
    }

    pub async fn slot(&self, id: &str) -> StoreResult<Option<Slot>> {
        self.ready()?;
        let fields: HashMap<String, String> = self
            .client
            .hgetall(key(&["slot", id]))
            .await
            .map_err(down)?;
        Ok(slot_from_fields(&fields).filter(|s| s.expires_ms > now_ms()))
    }

    pub async fn register(
        &self,
        id: &str,
        result: &EnrollmentResult,
        keys: ChannelKeys,
    ) -> StoreResult<Changed> {
        let topic = Topic::Enrollment(id.to_owned());
        let now = now_ms();
        let script_keys = vec![
            key(&["slot", id]),
            key(&["ch", &result.channel_id]),
            WAKE.to_owned(),
        ];
        let args = vec![
            b64(&keys.device),
            json(result)?,
            now.to_string(),
            (now + OUTCOME_GRACE_MS).to_string(),
            b64(&keys.helper),
            (now / 1000).to_string(),
            topic.wire(),
        ];
        let done = changed(&self.run(&self.scripts.register, script_keys, args).await?);
        Ok(done)
    }

    pub async fn post_outcome(
        &self,
        id: &str,
        outcome: &EnrollmentOutcome,
    ) -> StoreResult<Changed> {
        let topic = Topic::Enrollment(id.to_owned());
        let keys = vec![key(&["slot", id]), WAKE.to_owned()];
        let args = vec![json(outcome)?, now_ms().to_string(), topic.wire()];
        let done = changed(&self.run(&self.scripts.outcome, keys, args).await?);
        Ok(done)
    }

    pub async fn close_slot(&self, id: &str) -> StoreResult<()> {
        let keys = vec![key(&["slot", id]), key(&["slots"]), key(&["slots", ""])];
        self.run(&self.scripts.close_slot, keys, vec![id.to_owned()])
            .await
            .map(drop)
    }

    pub async fn rate(&self, bucket: &str, rate: Rate) -> StoreResult<Result<(), Duration>> {
        let args = vec![
            rate.per_sec.to_string(),
            rate.burst.to_string(),
            now_ms().to_string(),
        ];
        let v = self
            .run(&self.scripts.rate, vec![key(&["rate", bucket])], args)
            .await?;
        Ok(match v.as_u64().unwrap_or(0) {
            0 => Ok(()),
            ms => Err(Duration::from_millis(ms)),
        })
    }
}
