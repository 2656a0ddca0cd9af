//! Several relay processes sharing one real `redis-server` (started here on
//! a private port): wake-ups across instances, "answer once" across
//! instances, Redis and relays killed while logins wait, a Sentinel
//! failover, and real PAM logins through a relay pair.

#[path = "../../relay/tests/support/client.rs"]
mod client;
#[path = "../../relay/tests/support/redis_server.rs"]
mod redis_server;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use client::b64;
use pushmfa_protocol::signed::Decision;
use pushmfa_tests::push::{Phone, Relay, number_in};
use pushmfa_tests::{Answer, TestEnv, rc};
use redis_server::{RedisServer, die_with_parent, free_port};
use reqwest::StatusCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SVC: &str = "pushmfa-test";

/// A relay on `store` with rate limits out of the way of tight loops.
fn relay_on(store: &str) -> Relay {
    Relay::start_with(&[
        "--store",
        store,
        "--rate-per-sec",
        "100000",
        "--burst",
        "100000",
    ])
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A host's and a device's ends of one channel.
struct Ends {
    channel: String,
    helper_token: String,
    device_token: String,
}

struct Api(reqwest::Client);

impl Api {
    fn new() -> Api {
        Api(reqwest::Client::new())
    }

    /// Enrolls a device with the slot opened on `a`, the device registering
    /// on `b` and the host collecting the registration on `c`.
    async fn enroll_across(&self, a: &str, b: &str, c: &str) -> Ends {
        let (result, device) = client::enroll(&self.0, a, b, c).await;
        Ends {
            channel: result.channel_id,
            helper_token: result.helper_token,
            device_token: device.device_token,
        }
    }

    async fn post_challenge(&self, relay: &str, e: &Ends, id: &str) -> StatusCode {
        client::post_challenge(&self.0, relay, &e.channel, &e.helper_token, id, 60).await
    }

    async fn answer(&self, relay: &str, e: &Ends, id: &str, fill: u8) -> StatusCode {
        client::answer(&self.0, relay, &e.channel, &e.device_token, id, fill).await
    }

    async fn withdraw(&self, relay: &str, e: &Ends, id: &str) {
        let st = self
            .0
            .delete(format!("{relay}/v1/channels/{}/challenges/{id}", e.channel))
            .bearer_auth(&e.helper_token)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(st, StatusCode::NO_CONTENT);
    }

    /// The helper's long-poll for the answer to `id` on `relay`.
    async fn wait_response(&self, relay: &str, e: &Ends, id: &str) -> StatusCode {
        self.0
            .get(format!(
                "{relay}/v1/channels/{}/challenges/{id}/response?wait=10",
                e.channel
            ))
            .bearer_auth(&e.helper_token)
            .send()
            .await
            .unwrap()
            .status()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Checks wake-up times: the median within 100 ms (the figure),
/// none slow enough to be a timeout rather than a wake-up.
fn check_wakes(what: &str, mut took: Vec<Duration>) {
    took.sort();
    let (p50, p99) = (percentile(&took, 0.5), percentile(&took, 0.99));
    eprintln!(
        "{what}: p50 {p50:?}, p99 {p99:?}, max {:?}",
        took[took.len() - 1]
    );
    assert!(p50 < Duration::from_millis(100), "{what}: p50 {p50:?}");
    assert!(
        took[took.len() - 1] < Duration::from_secs(2),
        "{what}: a wake-up was lost: {took:?}"
    );
}

#[test]
fn a_device_polling_one_relay_wakes_when_the_host_posts_on_another() {
    let redis = RedisServer::start(&[]);
    let (a, b, c) = (
        relay_on(&redis.url()),
        relay_on(&redis.url()),
        relay_on(&redis.url()),
    );
    rt().block_on(async {
        let api = Api::new();
        let e = api.enroll_across(&a.url, &b.url, &c.url).await;
        let mut took = Vec::new();
        for round in 0..30u8 {
            let (ch, dtok) = (&e.channel, &e.device_token);
            let (_, etag, _) = client::pending(&api.0, &a.url, ch, dtok, None, 0).await;
            let poll = {
                let (http, url, ch, dtok) =
                    (api.0.clone(), a.url.clone(), ch.clone(), dtok.clone());
                tokio::spawn(async move {
                    let got = client::pending(&http, &url, &ch, &dtok, Some(&etag), 10).await;
                    (Instant::now(), got)
                })
            };
            // Let the poll reach the relay and subscribe.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let id = b64(32, round);
            let posted = Instant::now();
            assert_eq!(
                api.post_challenge(&b.url, &e, &id).await,
                StatusCode::CREATED
            );
            let (woke, (status, _, ids)) = poll.await.unwrap();
            assert_eq!(status, StatusCode::OK);
            assert!(ids.contains(&id), "{ids:?}");
            took.push(woke.saturating_duration_since(posted));
            api.withdraw(&c.url, &e, &id).await;
        }
        check_wakes("device on A, host posts on B", took);
    });
}

fn clone_ends(e: &Ends) -> Ends {
    Ends {
        channel: e.channel.clone(),
        helper_token: e.helper_token.clone(),
        device_token: e.device_token.clone(),
    }
}

#[test]
fn an_answer_posted_on_one_relay_wakes_the_host_waiting_on_another() {
    let redis = RedisServer::start(&[]);
    let (a, b, c) = (
        relay_on(&redis.url()),
        relay_on(&redis.url()),
        relay_on(&redis.url()),
    );
    rt().block_on(async {
        let api = Api::new();
        let e = api.enroll_across(&c.url, &b.url, &a.url).await;
        let mut took = Vec::new();
        for round in 0..30u8 {
            let id = b64(32, round);
            assert_eq!(
                api.post_challenge(&a.url, &e, &id).await,
                StatusCode::CREATED
            );
            let wait = {
                let (url, e, id) = (a.url.clone(), clone_ends(&e), id.clone());
                tokio::spawn(async move {
                    let st = Api::new().wait_response(&url, &e, &id).await;
                    (Instant::now(), st)
                })
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            let answered = Instant::now();
            assert_eq!(api.answer(&c.url, &e, &id, 7).await, StatusCode::NO_CONTENT);
            let (woke, status) = wait.await.unwrap();
            assert_eq!(status, StatusCode::OK, "the host got no answer");
            took.push(woke.saturating_duration_since(answered));
            api.withdraw(&b.url, &e, &id).await;
        }
        check_wakes("host on A, device answers on C", took);
    });
}

#[test]
fn two_answers_racing_on_two_relays_have_exactly_one_winner() {
    let redis = RedisServer::start(&[]);
    let (a, b, c) = (
        relay_on(&redis.url()),
        relay_on(&redis.url()),
        relay_on(&redis.url()),
    );
    rt().block_on(async {
        let api = Api::new();
        let e = api.enroll_across(&a.url, &a.url, &a.url).await;
        for round in 0..1000u32 {
            let id = B64.encode(round.to_be_bytes().repeat(8));
            assert_eq!(
                api.post_challenge(&a.url, &e, &id).await,
                StatusCode::CREATED
            );
            let (on_b, on_c) = tokio::join!(
                api.answer(&b.url, &e, &id, 1),
                api.answer(&c.url, &e, &id, 2)
            );
            let mut got = [on_b, on_c];
            got.sort();
            assert_eq!(
                got,
                [StatusCode::NO_CONTENT, StatusCode::CONFLICT],
                "round {round}"
            );
            api.withdraw(&a.url, &e, &id).await;
        }
    });
}

/// Rewrites the phone's stored relay URL: the phone now reaches `url`
/// (as behind a load balancer, when an instance went away).
fn phone_uses(phone: &Phone, url: &str) {
    let path = phone.store_path().join("accounts.json");
    let mut accounts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for a in accounts.as_array_mut().into_iter().flatten() {
        a["relay"] = serde_json::Value::String(url.to_owned());
    }
    std::fs::write(&path, serde_json::to_vec(&accounts).unwrap()).unwrap();
}

/// A prompt answer: once the phone sees the request, `before` runs (while
/// the login waits), then the phone approves with the number shown, then
/// Enter.
fn approve_after(phone: &Phone, before: impl Fn() + 'static) -> Answer {
    let dir = phone.store_path().to_owned();
    Answer::Reply(Box::new(move |prompt: &str| {
        let phone = Phone { dir: dir.clone() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while phone.pending().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the request never reached the phone"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        before();
        phone.decide(Decision::Approve, Some(number_in(prompt)));
        String::new()
    }))
}

/// A helper whose `url` lists `relays` in order, `alice` enrolled with a
/// phone (through the first).
fn host_on(relays: &[&Relay]) -> (TestEnv, Phone) {
    let urls: Vec<String> = relays.iter().map(|r| format!("\"{}\"", r.url)).collect();
    let mut e = TestEnv::new(&format!(
        "[backend]\nkind = \"relay\"\nurl = [{}]\n",
        urls.join(", ")
    ));
    e.start_helper();
    e.service(SVC, "");
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, "alice");
    (e, phone)
}

#[test]
fn pam_logins_go_on_through_the_second_relay_when_the_first_is_killed() {
    let redis = RedisServer::start(&[]);
    let mut a = relay_on(&redis.url());
    let b = relay_on(&redis.url());
    let (e, phone) = host_on(&[&a, &b]);
    // The phone answers through B while the host posts on A.
    phone_uses(&phone, &b.url);
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(approve_after(&phone, || {}))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    a.stop();
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(approve_after(&phone, || {}))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    e.wait_for_log_lines("outcome=success (method=push", 2);
}

#[test]
fn redis_killed_and_restarted_while_a_login_waits_loses_nothing() {
    let redis = Arc::new(Mutex::new(RedisServer::start(&[])));
    let url = redis.lock().unwrap().url();
    let (a, b) = (relay_on(&url), relay_on(&url));
    let (e, phone) = host_on(&[&a]);
    phone_uses(&phone, &b.url);
    let probe = format!("{}/v1/channels/{}/challenges", a.url, b64(16, 1));
    let probe_b = format!("{}/v1/channels/{}/challenges", b.url, b64(16, 1));
    let outage = {
        let redis = redis.clone();
        move || {
            redis.lock().unwrap().kill();
            // Down: an answer at once, 503 with Retry-After, not a hang.
            let started = Instant::now();
            let out = std::process::Command::new("curl")
                .args(["-s", "-i", "-H", "Authorization: Bearer x", &probe])
                .output()
                .unwrap();
            let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
            assert!(head.starts_with("http/1.1 503"), "{head}");
            assert!(head.contains("retry-after: 1"), "{head}");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
            redis.lock().unwrap().restart();
            recovered(&[&probe, &probe_b]);
        }
    };
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(approve_after(&phone, outage))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    // And a wrong number through the same relays still fails.
    let dir = phone.store_path().to_owned();
    let (code, _) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(Answer::Reply(Box::new(move |prompt: &str| {
            let phone = Phone { dir: dir.clone() };
            let wrong = (number_in(prompt) + 1) % 100;
            phone.decide(Decision::Approve, Some(wrong));
            String::new()
        })))
        .run();
    assert_ne!(code, rc::SUCCESS);
}

/// Waits until each relay's store answers again (404: no such channel),
/// as it does by itself once Redis is back.
fn recovered(probes: &[&str]) {
    for url in probes {
        let deadline = Instant::now() + Duration::from_secs(20);
        while status_of(url) != "404" {
            assert!(Instant::now() < deadline, "{url} did not recover");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The status code of a GET with a made-up token.
fn status_of(url: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-H", "Authorization: Bearer x", url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A primary, a replica and three sentinels on loopback.
struct Sentinels {
    primary: RedisServer,
    replica: RedisServer,
    sentinels: Vec<std::process::Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Sentinels {
    fn start() -> Sentinels {
        // No 5 s wait before the replica's first full copy.
        let primary = RedisServer::start(&["--repl-diskless-sync-delay", "0"]);
        let replica_of = format!("{}", primary.port);
        let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &replica_of]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
        {
            assert!(Instant::now() < deadline, "the replica never synced");
            std::thread::sleep(Duration::from_millis(50));
        }
        let dir = tempfile::tempdir().unwrap();
        let mut sentinels = Vec::new();
        let mut ports = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor mymaster 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds mymaster 1000\n\
                     sentinel failover-timeout mymaster 10000\n",
                    dir.path().display(),
                    primary.port
                ),
            )
            .unwrap();
            let mut cmd = std::process::Command::new("redis-server");
            cmd.arg(&conf)
                .arg("--sentinel")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            die_with_parent(&mut cmd);
            let child = cmd.spawn().unwrap();
            sentinels.push(child);
            ports.push(port);
        }
        let s = Sentinels {
            primary,
            replica,
            sentinels,
            ports,
            _dir: dir,
        };
        s.wait_for_primary(s.primary.port);
        s
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+sentinel://{}/mymaster", hosts.join(","))
    }

    /// The primary's port as the first sentinel reports it.
    fn primary_port(&self) -> Option<u16> {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.ports[0].to_string()])
            .args(["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)?
            .trim()
            .parse()
            .ok()
    }

    fn wait_for_primary(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.primary_port() != Some(port) {
            assert!(
                Instant::now() < deadline,
                "sentinels never named port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for c in &mut self.sentinels {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_sentinel_failover_while_a_login_waits_loses_nothing() {
    let cluster = Arc::new(Mutex::new(Sentinels::start()));
    let url = cluster.lock().unwrap().url();
    let (a, b) = (relay_on(&url), relay_on(&url));
    let (e, phone) = host_on(&[&a]);
    phone_uses(&phone, &b.url);
    let probes = [&a.url, &b.url].map(|u| format!("{u}/v1/channels/{}/challenges", b64(16, 1)));
    let failover = {
        let cluster = cluster.clone();
        move || {
            let mut c = cluster.lock().unwrap();
            // Everything written so far is on the replica (its offset has
            // caught up with the primary's), then the primary dies; the
            // sentinels promote the replica.
            let offset = |r: &RedisServer, field: &str| -> Option<u64> {
                r.cli(&["INFO", "replication"])
                    .lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.trim().parse().ok())
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while offset(&c.primary, "master_repl_offset:")
                != offset(&c.replica, "slave_repl_offset:")
            {
                assert!(Instant::now() < deadline, "the replica does not catch up");
                std::thread::sleep(Duration::from_millis(20));
            }
            let old = c.primary.port;
            c.primary.kill();
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.primary_port().is_none_or(|p| p == old) {
                assert!(Instant::now() < deadline, "no failover");
                std::thread::sleep(Duration::from_millis(100));
            }
            recovered(&[&probes[0], &probes[1]]);
        }
    };
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(approve_after(&phone, failover))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
}

#[test]
fn with_redis_down_a_failmode_safe_host_still_asks_for_a_second_factor() {
    let mut redis = RedisServer::start(&[]);
    let relay = relay_on(&redis.url());
    let mut e = TestEnv::new(&format!(
        "[backend]\nkind = \"relay\"\nurl = \"{}\"\n[policy]\nfailmode = \"safe\"\n",
        relay.url
    ));
    e.start_helper();
    e.service(SVC, "");
    Phone::new(&e, "phone").enroll(&e, "alice");
    redis.kill();
    // The relay answers (503): that is not "relay unreachable".
    let (code, seen) = e
        .pam(SVC, "alice")
        .on_info(|_| {})
        .answer(Answer::Fail)
        .run();
    assert_ne!(code, rc::SUCCESS, "{seen:?}");
    assert!(
        seen.iter().any(|s| pushmfa_tests::asks_for_a_code(s)),
        "{seen:?}"
    );
    let log = e.wait_for_log("asking for a recovery code");
    assert!(!log.contains("FAILMODE SAFE"), "{log}");
    assert!(log.contains("503"), "{log}");
}

#[test]
fn redis_s_password_comes_from_a_file_and_a_wrong_one_is_a_503() {
    let redis = RedisServer::start(&["--requirepass", "s3cret-pw"]);
    let dir = tempfile::tempdir().unwrap();
    let relay_with = |password: &str| {
        let file = dir.path().join(format!("pw-{password}"));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        let conf = dir.path().join(format!("relay-{password}.toml"));
        std::fs::write(
            &conf,
            format!(
                "store = \"{}\"\nstore_password_file = \"{}\"\n",
                redis.url(),
                file.display()
            ),
        )
        .unwrap();
        Relay::start_with(&["--config", &conf.to_string_lossy()])
    };
    let good = relay_with("s3cret-pw");
    let bad = relay_with("wrong");
    rt().block_on(async {
        let http = reqwest::Client::new();
        let (result, _) = client::enroll(&http, &good.url, &good.url, &good.url).await;
        let probe = |url: &str| {
            let url = format!("{url}/v1/channels/{}/challenges", result.channel_id);
            let http = http.clone();
            async move {
                http.get(url)
                    .bearer_auth("x")
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        assert_eq!(probe(&good.url).await, StatusCode::UNAUTHORIZED);
        assert_eq!(probe(&bad.url).await, StatusCode::SERVICE_UNAVAILABLE);
    });
}

#[test]
fn a_relay_started_before_redis_answers_503_then_works_by_itself() {
    let mut redis = RedisServer::start(&[]);
    redis.kill();
    let relay = relay_on(&redis.url());
    let probe = format!("{}/v1/channels/{}/challenges", relay.url, b64(16, 1));
    assert_eq!(status_of(&probe), "503");
    assert_eq!(status_of(&format!("{}/v1/push/key", relay.url)), "503");
    redis.restart();
    recovered(&[&probe]);
    rt().block_on(async {
        let http = reqwest::Client::new();
        client::enroll(&http, &relay.url, &relay.url, &relay.url).await;
        let key = http
            .get(format!("{}/v1/push/key", relay.url))
            .send()
            .await
            .unwrap();
        assert_eq!(key.status(), StatusCode::OK);
    });
}

#[test]
fn a_finished_enrollment_stops_counting_against_its_address_at_once() {
    let redis = RedisServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("relay.toml");
    std::fs::write(&conf, "[limits]\nopen_enrollments_per_address = 2\n").unwrap();
    let (a, b) = (
        Relay::start_with(&["--store", &redis.url(), "--config", &conf.to_string_lossy()]),
        Relay::start_with(&["--store", &redis.url(), "--config", &conf.to_string_lossy()]),
    );
    rt().block_on(async {
        let http = reqwest::Client::new();
        // Five enrollments one after the other from one address, across
        // both instances: each slot closes when the device has its verdict.
        for _ in 0..5 {
            let (created, _, device) = client::enroll_slot(&http, &a.url, &b.url, &a.url).await;
            client::finish_enrollment(&http, &b.url, &created, &device).await;
        }
    });
}
