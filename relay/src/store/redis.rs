//! The shared store: state in Redis, so that several relays behind a load
//! balancer act as one. Every change is one Lua script (atomic in Redis:
//! "answer once" and "register once" hold across instances) that also
//! publishes the changed topic; each instance keeps one subscriber
//! connection and fans those messages out to its own waiters.
//!
//! Keys (prefix `pushmfa:`), all with expiry except channels:
//! `ch:<id>` hash (helper, device: token hashes; created; push; ver),
//! `pend:<id>` hash (`<challenge>:r|x|a|f|s`: record, expiry, answered,
//! refusal, response), `slot:<id>` hash, `slots` and `slots:<addr>` sorted
//! sets of open slots by expiry, `rate:<key>` buckets, `epoch`, `vapid`.

use super::*;
use crate::wakeups::Topic;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::config::{ReconnectPolicy, ServerConfig};
use fred::types::scripts::Script;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const PREFIX: &str = "pushmfa:";
/// The pub/sub channel that carries wake-ups (the message is a topic).
const WAKE: &str = "pushmfa:wake";
/// How long a command may take before the request gets 503.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Where Redis is: `redis://[[user]:password@]host[:port][/db]`, or
/// through Sentinel:
/// `redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]`.
pub fn parse_url(url: &str) -> Result<Config, String> {
    if let Some(rest) = url.strip_prefix("redis+sentinel://") {
        return sentinel_config(rest);
    }
    if !url.starts_with("redis://") {
        return Err(format!(
            "store {url:?}: expected \"memory\", redis://host:port or redis+sentinel://host:port,.../service"
        ));
    }
    Config::from_url(url).map_err(|e| format!("store {url:?}: {e}"))
}

fn sentinel_config(rest: &str) -> Result<Config, String> {
    let bad = |why: &str| format!("store redis+sentinel://{rest}: {why}");
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((a, r)) => (Some(a), r),
        None => (None, rest),
    };
    let (hosts, path) = rest
        .split_once('/')
        .ok_or_else(|| bad("name the primary's service after the hosts: /mymaster"))?;
    let mut parts = path.split('/');
    let service = parts
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no service name"))?;
    let database = match parts.next() {
        Some(db) => Some(db.parse::<u8>().map_err(|_| bad("database: a number"))?),
        None => None,
    };
    let hosts = hosts
        .split(',')
        .map(|h| {
            let (host, port) = h
                .rsplit_once(':')
                .ok_or_else(|| bad("host:port expected"))?;
            let port = port.parse::<u16>().map_err(|_| bad("port: a number"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Ok(Server::new(host, port))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let (username, password) = match auth.map(|a| a.split_once(':').unwrap_or(("", a))) {
        Some((u, p)) => (Some(u).filter(|u| !u.is_empty()), Some(p)),
        None => (None, None),
    };
    Ok(Config {
        server: ServerConfig::Sentinel {
            hosts,
            service_name: service.to_owned(),
        },
        username: username.map(str::to_owned),
        password: password.map(str::to_owned),
        database,
        ..Config::default()
    })
}

pub struct RedisStore {
    client: Client,
    /// Cleared the moment the connection drops (before the client itself
    /// notices, commands would wait for their timeout), set on reconnect.
    up: Arc<AtomicBool>,
    hub: Hub,
    epoch: String,
    scripts: Scripts,
}

struct Scripts {
    post: Script,
    withdraw: Script,
    pending: Script,
    answer: Script,
    refuse: Script,
    collect: Script,
    set_push: Script,
    forget_push: Script,
    open_slot: Script,
    register: Script,
    outcome: Script,
    rate: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            post: Script::from_lua(POST),
            withdraw: Script::from_lua(WITHDRAW),
            pending: Script::from_lua(PENDING),
            answer: Script::from_lua(ANSWER),
            refuse: Script::from_lua(REFUSE),
            collect: Script::from_lua(COLLECT),
            set_push: Script::from_lua(SET_PUSH),
            forget_push: Script::from_lua(FORGET_PUSH),
            open_slot: Script::from_lua(OPEN_SLOT),
            register: Script::from_lua(REGISTER),
            outcome: Script::from_lua(OUTCOME),
            rate: Script::from_lua(RATE),
        }
    }
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

/// Logs to stderr (the journal), one write per line.
fn log(line: &str) {
    let line = format!("pushmfa-relay: {line}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

impl RedisStore {
    /// Connects (waiting a few seconds; when Redis is not there yet the
    /// relay starts anyway, answers 503 and connects when it can), starts
    /// the subscriber, and reads or sets the shared epoch.
    pub async fn connect(config: Config) -> Result<RedisStore, String> {
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
        report_connection_changes(&client, up.clone());
        fan_out(subscriber, hub.clone());
        if tokio::time::timeout(Duration::from_secs(5), client.wait_for_connect())
            .await
            .is_err()
        {
            log("redis: not reachable yet; answering 503 until it is");
        }
        let store = RedisStore {
            client,
            up,
            hub,
            epoch: String::new(),
            scripts: Scripts::new(),
        };
        Ok(store)
    }

    /// Reads the shared epoch, setting `fresh` if there is none. Until it
    /// is read, cursors simply never match (one extra answer each).
    pub async fn adopt_epoch(&mut self, fresh: &str) -> StoreResult<()> {
        self.epoch = self.shared_value("epoch", fresh).await?;
        Ok(())
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

    pub fn epoch(&self) -> &str {
        &self.epoch
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
        self.hub.touch(topic);
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
                self.hub.touch(&topic);
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
        if removed {
            self.hub.touch(&topic);
        }
        Ok(removed)
    }

    pub async fn pending(&self, channel: &str) -> StoreResult<Option<PendingView>> {
        let v = self
            .run(
                &self.scripts.pending,
                Self::challenge_call(channel),
                Vec::new(),
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
        Ok(Some(PendingView::of(version, pending.values(), now_ms())))
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
        if done == Changed::Done {
            self.hub.touch(&topic);
        }
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
        if done == Changed::Done {
            self.hub.touch(&topic);
        }
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
        if done == Changed::Done {
            self.hub.touch(&topic);
        }
        Ok(done)
    }

    pub async fn close_slot(&self, id: &str) -> StoreResult<()> {
        self.ready()?;
        let _: i64 = self.client.del(key(&["slot", id])).await.map_err(down)?;
        Ok(())
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

/// Challenges from a `pend:` hash's fields and values, in turn.
fn pending_from_fields(flat: &[String]) -> HashMap<String, Pending> {
    let mut parts: HashMap<&str, HashMap<&str, &str>> = HashMap::new();
    for pair in flat.chunks_exact(2) {
        if let Some((id, kind)) = pair[0].rsplit_once(':') {
            parts.entry(id).or_default().insert(kind, &pair[1]);
        }
    }
    parts
        .into_iter()
        .filter_map(|(id, f)| {
            let record = serde_json::from_str(f.get("r")?).ok()?;
            let pending = Pending {
                record,
                expires_ms: f.get("x")?.parse().ok()?,
                answered: f.contains_key("a"),
                refused: f.get("f").map(|s| (*s).to_owned()),
                response: f.get("s").and_then(|s| serde_json::from_str(s).ok()),
            };
            Some((id.to_owned(), pending))
        })
        .collect()
}

fn slot_from_fields(f: &HashMap<String, String>) -> Option<Slot> {
    Some(Slot {
        helper_token: decode_hash(f.get("helper")?)?,
        expires_ms: f.get("exp")?.parse().ok()?,
        client: f.get("client")?.parse().ok()?,
        device_token: f.get("device").and_then(|d| decode_hash(d)),
        result: f.get("result").and_then(|r| serde_json::from_str(r).ok()),
        outcome: f.get("outcome").and_then(|o| serde_json::from_str(o).ok()),
    })
}

/// Tracks (in `up`) and logs when the connection to Redis is lost and
/// when it is back. While it is down, a PING every 250 ms tells when it
/// works again (so an error that did not cost the connection costs only
/// that long).
fn report_connection_changes(client: &Client, up: Arc<AtomicBool>) {
    let mut errors = client.error_rx();
    let client = client.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                e = errors.recv() => match e {
                    Ok((e, _)) => {
                        if up.swap(false, Ordering::Relaxed) {
                            log(&format!("redis: connection lost ({e}); answering 503 until it is back"));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
                _ = tick.tick(), if !up.load(Ordering::Relaxed) => {
                    let ping = client.ping::<String>(None);
                    if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), ping).await {
                        up.store(true, Ordering::Relaxed);
                        log("redis: connected again");
                    }
                }
            }
        }
    });
}

/// Feeds wake-ups from Redis to this instance's waiters. After every
/// (re)connect it subscribes again and then wakes every waiter, since
/// messages sent while it was away are gone.
fn fan_out(subscriber: SubscriberClient, hub: Hub) {
    let mut messages = subscriber.message_rx();
    let mut reconnects = subscriber.reconnect_rx();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                m = messages.recv() => match m {
                    Ok(m) => {
                        if let Some(t) = m.value.as_string().as_deref().and_then(Topic::from_wire) {
                            hub.touch(&t);
                        }
                    }
                    // Too many at once: some were skipped, so look again everywhere.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => hub.touch_all(),
                    Err(_) => return,
                },
                r = reconnects.recv() => match r {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Subscribing twice is harmless; missing it is not.
                        while let Err(e) = subscriber.subscribe(WAKE).await {
                            log(&format!("redis: cannot subscribe to wake-ups: {e}"));
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        hub.touch_all();
                    }
                    Err(_) => return,
                },
            }
        }
    });
}

/// KEYS: ch, pend, wake. ARGV: id, record, expires_ms, now_ms, max, topic.
const POST: &str = r#"
local function drop(pend, id)
  return redis.call('HDEL', pend, id..':r', id..':x', id..':a', id..':f', id..':s')
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'nochannel'} end
local now = tonumber(ARGV[4])
local all = redis.call('HGETALL', KEYS[2])
local exp, answered = {}, {}
for i = 1, #all, 2 do
  local id, kind = string.match(all[i], '^(.*):(%a)$')
  if kind == 'x' then exp[id] = tonumber(all[i + 1])
  elseif kind == 'a' then answered[id] = true end
end
local live = 0
for id, x in pairs(exp) do
  if x <= now then drop(KEYS[2], id)
  elseif id == ARGV[1] then return {'duplicate'}
  elseif not answered[id] then live = live + 1 end
end
if live >= tonumber(ARGV[5]) then return {'full'} end
redis.call('HSET', KEYS[2], ARGV[1]..':r', ARGV[2], ARGV[1]..':x', ARGV[3])
local ttl = redis.call('PTTL', KEYS[2])
if ttl < tonumber(ARGV[3]) - now then redis.call('PEXPIREAT', KEYS[2], ARGV[3]) end
redis.call('HINCRBY', KEYS[1], 'ver', 1)
redis.call('PUBLISH', KEYS[3], ARGV[6])
return {'ok', redis.call('HGET', KEYS[1], 'push') or ''}
"#;

/// KEYS: ch, pend, wake. ARGV: id, topic.
const WITHDRAW: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local id = ARGV[1]
local n = redis.call('HDEL', KEYS[2], id..':r', id..':x', id..':a', id..':f', id..':s')
if n > 0 then
  redis.call('HINCRBY', KEYS[1], 'ver', 1)
  redis.call('PUBLISH', KEYS[3], ARGV[2])
end
return n
"#;

/// KEYS: ch, pend. Returns false or {ver, flat pend hash}.
const PENDING: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return {tonumber(redis.call('HGET', KEYS[1], 'ver') or '0'), redis.call('HGETALL', KEYS[2])}
"#;

/// KEYS: ch, pend, wake. ARGV: id, response, now_ms, topic.
const ANSWER: &str = r#"
local id = ARGV[1]
local x = tonumber(redis.call('HGET', KEYS[2], id..':x') or '0')
if redis.call('EXISTS', KEYS[1]) == 0 or x <= tonumber(ARGV[3]) then return 'notfound' end
if redis.call('HSETNX', KEYS[2], id..':a', '1') == 0 then return 'conflict' end
redis.call('HSET', KEYS[2], id..':s', ARGV[2])
redis.call('HDEL', KEYS[2], id..':f')
redis.call('HINCRBY', KEYS[1], 'ver', 1)
redis.call('PUBLISH', KEYS[3], ARGV[4])
return 'done'
"#;

/// KEYS: ch, pend, wake. ARGV: id, reason, now_ms, topic.
const REFUSE: &str = r#"
local id = ARGV[1]
local x = tonumber(redis.call('HGET', KEYS[2], id..':x') or '0')
if redis.call('EXISTS', KEYS[1]) == 0 or x <= tonumber(ARGV[3]) then return 'notfound' end
if redis.call('HDEL', KEYS[2], id..':a') == 0 then return 'conflict' end
redis.call('HSET', KEYS[2], id..':f', ARGV[2])
redis.call('HDEL', KEYS[2], id..':s')
redis.call('HINCRBY', KEYS[1], 'ver', 1)
redis.call('PUBLISH', KEYS[3], ARGV[4])
return 'done'
"#;

/// KEYS: pend. ARGV: id, now_ms.
const COLLECT: &str = r#"
local id = ARGV[1]
local x = tonumber(redis.call('HGET', KEYS[1], id..':x') or '0')
if x <= tonumber(ARGV[2]) then return {'notfound'} end
local s = redis.call('HGET', KEYS[1], id..':s')
if not s then return {'nothing'} end
redis.call('HDEL', KEYS[1], id..':s')
return {'answer', s}
"#;

/// KEYS: ch. ARGV: subscription JSON, or empty to clear.
const SET_PUSH: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then return redis.call('HDEL', KEYS[1], 'push') end
return redis.call('HSET', KEYS[1], 'push', ARGV[1])
"#;

/// KEYS: ch. ARGV: the subscription the push service refused.
const FORGET_PUSH: &str = r#"
if redis.call('HGET', KEYS[1], 'push') == ARGV[1] then
  return redis.call('HDEL', KEYS[1], 'push')
end
return 0
"#;

/// KEYS: slot, slots, slots:<addr>.
/// ARGV: id, helper hash, expires_ms, client, now_ms, per address, total.
const OPEN_SLOT: &str = r#"
local now, exp = tonumber(ARGV[5]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then return 'here' end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[7]) then return 'full' end
redis.call('HSET', KEYS[1], 'helper', ARGV[2], 'exp', ARGV[3], 'client', ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], exp, ARGV[1])
redis.call('ZADD', KEYS[3], exp, ARGV[1])
for i = 2, 3 do
  if redis.call('PTTL', KEYS[i]) < exp - now then redis.call('PEXPIREAT', KEYS[i], ARGV[3]) end
end
return 'done'
"#;

/// KEYS: slot, new channel, wake.
/// ARGV: device hash, result, now_ms, grace until, helper hash, created, topic.
const REGISTER: &str = r#"
local x = tonumber(redis.call('HGET', KEYS[1], 'exp') or '0')
if x <= tonumber(ARGV[3]) then return 'notfound' end
if redis.call('HSETNX', KEYS[1], 'device', ARGV[1]) == 0 then return 'conflict' end
local until_ms = math.max(x, tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'result', ARGV[2], 'exp', string.format('%d', until_ms))
redis.call('PEXPIREAT', KEYS[1], string.format('%d', until_ms))
redis.call('HSET', KEYS[2], 'helper', ARGV[5], 'device', ARGV[1], 'created', ARGV[6], 'ver', '0')
redis.call('PUBLISH', KEYS[3], ARGV[7])
return 'done'
"#;

/// KEYS: slot, wake. ARGV: outcome, now_ms, topic.
const OUTCOME: &str = r#"
local x = tonumber(redis.call('HGET', KEYS[1], 'exp') or '0')
if x <= tonumber(ARGV[2]) then return 'notfound' end
if redis.call('HEXISTS', KEYS[1], 'device') == 0 then return 'conflict' end
if redis.call('HSETNX', KEYS[1], 'outcome', ARGV[1]) == 0 then return 'conflict' end
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 'done'
"#;

/// KEYS: bucket. ARGV: per second, burst, now_ms. Returns 0, or the
/// milliseconds until the bucket holds a request again.
const RATE: &str = r#"
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local t, at = tonumber(b[1]) or burst, tonumber(b[2]) or now
t = math.min(burst, t + math.max(0, now - at) / 1000 * rate)
local wait = 0
if t >= 1 then t = t - 1 else wait = math.ceil((1 - t) / rate * 1000) end
redis.call('HSET', KEYS[1], 't', tostring(t), 'at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil(burst / rate * 1000) + 1000))
return wait
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_server_or_sentinels_and_garbage_says_what_is_wrong() {
        assert!(parse_url("redis://127.0.0.1:6379/2").is_ok());
        let c = parse_url("redis+sentinel://:pw@10.0.0.1:26379,[::1]:26380/mymaster/3").unwrap();
        match &c.server {
            ServerConfig::Sentinel {
                hosts,
                service_name,
            } => {
                assert_eq!(service_name, "mymaster");
                assert_eq!(hosts.len(), 2);
                assert_eq!(hosts[1].port, 26380);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert_eq!(c.database, Some(3));
        for bad in [
            "http://x",
            "redis+sentinel://h:1",
            "redis+sentinel://h/svc",
            "redis+sentinel://h:x/svc",
            "redis+sentinel://h:1/",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert!(e.contains("store"), "{bad}: {e}");
        }
    }

    #[test]
    fn challenge_fields_become_challenges_and_broken_ones_are_skipped() {
        let rec = r#"{"id":"a","challenge":"Yw","signature":"cw","expires_in":60}"#;
        let flat: Vec<String> = [
            ("a:r", rec),
            ("a:x", "5000"),
            ("a:a", "1"),
            ("a:s", r#"{"response":"cg","signature":"cw"}"#),
            ("b:r", "{not json"),
            ("b:x", "5000"),
            ("c:x", "5000"),
            ("odd", ""),
        ]
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.to_string()])
        .collect();
        let p = pending_from_fields(&flat);
        assert_eq!(p.len(), 1, "only the whole record counts");
        let a = &p["a"];
        assert!(a.answered && a.response.is_some() && a.expires_ms == 5000);
    }
}
