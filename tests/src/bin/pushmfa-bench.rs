//! Benchmarks for docs/benchmarks.md. Build everything in release mode first:
//!
//! ```sh
//! cargo build --release --workspace && target/release/pushmfa-bench [argon2|login|concurrent|push|relay [N [memory|redis [INSTANCES]]]|wake [N ...]|idle [N]|pending [N [HOSTS [h2|http1]]]|sealed [N]|offline|ssh|webapp [N]|all]
//! ```
//!
//! Uses the default Argon2id cost (m=19456 KiB, t=2, p=1), real libpam, the
//! release module and a release helper process.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_authenticator as authn;
use pushmfa_helper::codes::{HashParams, SALT_LEN, hash_code};
use pushmfa_protocol::relay_api::*;
use pushmfa_protocol::signed::Decision;
use pushmfa_tests::push::{Phone, Relay, number_in, relay_config};
use pushmfa_tests::{TestEnv, connect_from, rc};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../../../relay/tests/support/client.rs"]
mod client;
#[path = "../../../relay/tests/support/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer;

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: n={} median={:.2} ms p99={:.2} ms min={:.2} ms max={:.2} ms",
        samples.len(),
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
    );
}

const DEFAULT_COST: &str =
    "[recovery]\ncode_count = 20\nargon2_memory_kib = 19456\nargon2_iterations = 2\n";

fn argon2() {
    let p = HashParams {
        memory_kib: 19456,
        iterations: 2,
        parallelism: 1,
    };
    let salt = [1u8; SALT_LEN];
    let samples = (0..50)
        .map(|_| {
            let t = Instant::now();
            let _ = hash_code("1A2B3C4D5E6F7G80", &salt, p);
            t.elapsed()
        })
        .collect();
    stats("argon2id m=19456KiB t=2 p=1, one hash", samples);
}

fn login() {
    let mut e = TestEnv::new(DEFAULT_COST);
    e.start_helper();
    e.service("bench", "");
    let mut samples = Vec::new();
    while samples.len() < 100 {
        for code in e.generate("alice") {
            let t = Instant::now();
            let (code, _) = e.pam("bench", "alice").answer(code.as_str()).run();
            samples.push(t.elapsed());
            assert_eq!(code, rc::SUCCESS);
        }
    }
    stats(
        "recovery-code login through libpam (pam_start..pam_end)",
        samples,
    );
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn concurrent() {
    const N: usize = 100;
    let mut e = TestEnv::new(&format!(
        "[recovery]\ncode_count = 1\nargon2_memory_kib = 19456\nargon2_iterations = 2\n{}",
        std::env::var("BENCH_EXTRA").unwrap_or_default()
    ));
    e.start_helper();
    e.service("bench", "timeout=60");
    let codes: Vec<(String, String)> = (0..N)
        .map(|i| {
            let user = format!("user{i}");
            let code = e.generate(&user).remove(0);
            (user, code)
        })
        .collect();
    let idle_rss = peak_rss_kib(e.helper_pid());
    let start = Instant::now();
    let results: Vec<(i32, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = codes
            .iter()
            .map(|(user, code)| {
                let e = &e;
                s.spawn(move || {
                    let t = Instant::now();
                    let (rc_, _) = e.pam("bench", user).answer(code.as_str()).run();
                    (rc_, t.elapsed())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((-1, Duration::ZERO)))
            .collect()
    });
    let wall = start.elapsed();
    let ok = results.iter().filter(|(r, _)| *r == rc::SUCCESS).count();
    println!(
        "{N} concurrent logins: {ok} succeeded in {:.2} s = {:.1} logins/s; helper peak RSS {} KiB (after setup {} KiB)",
        wall.as_secs_f64(),
        N as f64 / wall.as_secs_f64(),
        peak_rss_kib(e.helper_pid()),
        idle_rss,
    );
    stats(
        "per-login latency under that load",
        results.into_iter().map(|(_, d)| d).collect(),
    );
    assert_eq!(ok, N);
}

/// A relay and a helper for latency runs: rate limits out of the way
/// (latency, not rate limiting, is measured), service "bench".
fn push_env() -> (Relay, TestEnv) {
    let (relay, _config) = unlimited_relay(&[]);
    let mut e = TestEnv::new(&relay_config(
        &relay.url,
        "[push]\nrate_limit_count = 1000\n",
    ));
    e.start_helper();
    e.service("bench", "");
    (relay, e)
}

/// Push logins approved at once by an in-process phone (own thread, own
/// runtime, one kept-alive HTTP client), in wait mode.
fn push() {
    let (_relay, e) = push_env();
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, "alice");
    let (tx, rx) = std::sync::mpsc::channel::<u8>();
    let posted: Arc<Mutex<Option<Instant>>> = Arc::default();
    let posted_by_phone = posted.clone();
    let store_dir = phone.store_path().to_owned();
    let phone_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let client = authn::http().unwrap_or_else(|e| panic!("{e}"));
        let store = authn::Store::open(&store_dir).unwrap_or_else(|e| panic!("{e}"));
        while let Ok(number) = rx.recv() {
            rt.block_on(async {
                let (reqs, _) = authn::pending_with(&client, &store, Duration::from_secs(5))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let req = reqs.first().unwrap_or_else(|| panic!("no request"));
                if let Ok(mut p) = posted_by_phone.lock() {
                    *p = Some(Instant::now());
                }
                authn::answer_with(&client, req, Decision::Approve, Some(number))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            });
        }
    });
    let (mut total, mut after_post) = (Vec::new(), Vec::new());
    for i in 0..110 {
        let tx = tx.clone();
        let t = Instant::now();
        let (code, seen) = e
            .pam("bench", "alice")
            .on_info(move |text| {
                let _ = tx.send(number_in(text));
            })
            .run();
        let done = Instant::now();
        assert_eq!(code, rc::SUCCESS, "{seen:?}\n{}", e.helper_log());
        if i >= 10 {
            // The first logins warm up connections.
            total.push(done - t);
            if let Some(p) = posted.lock().ok().and_then(|p| *p) {
                after_post.push(done - p);
            }
        }
    }
    drop(tx);
    let _ = phone_thread.join();
    stats(
        "push login through libpam, phone approves at once (pam_start..pam_end)",
        total,
    );
    stats(
        "approval POSTed by the phone -> pam_authenticate returned",
        after_post,
    );
}

/// Offline approval with the relay down, in prompt mode: Enter at the push
/// prompt -> the QR prompt (the failed post, issuing and signing the
/// challenge, drawing the QR code); the code typed -> pam_authenticate
/// returned (one HMAC per device and the counter saved under the user's
/// lock, fsync included). The phone's work (an in-process authenticator)
/// is outside both.
fn offline() {
    let (mut relay, e) = push_env();
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, "alice");
    relay.stop();
    let store = authn::Store::open(phone.store_path()).unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    let (mut to_qr, mut to_verdict) = (Vec::new(), Vec::new());
    for i in 0..110 {
        let marks: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let (m1, m2, st) = (marks.clone(), marks.clone(), store.clone());
        let (code, seen) = e
            .pam("bench", "alice")
            .rhost("203.0.113.7")
            .answer(pushmfa_tests::Answer::Reply(Box::new(move |_: &str| {
                m1.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Instant::now());
                String::new()
            })))
            .answer(pushmfa_tests::Answer::Reply(Box::new(
                move |prompt: &str| {
                    let shown = Instant::now();
                    let line = prompt
                        .lines()
                        .find(|l| l.starts_with("PUSHMFA-OFFLINE:"))
                        .unwrap_or_default();
                    let code = authn::offline::OfflineRequest::parse(&st, line)
                        .and_then(|r| r.approval_code())
                        .unwrap_or_default();
                    let mut m = m2.lock().unwrap_or_else(|e| e.into_inner());
                    m.push(shown);
                    m.push(Instant::now());
                    code
                },
            )))
            .run();
        let done = Instant::now();
        assert_eq!(code, rc::SUCCESS, "{seen:?}\n{}", e.helper_log());
        let m = marks.lock().unwrap_or_else(|e| e.into_inner());
        if i >= 10 && m.len() == 3 {
            to_qr.push(m[1] - m[0]);
            to_verdict.push(done - m[2]);
        }
    }
    stats(
        "Enter at the push prompt -> QR prompt shown (relay down)",
        to_qr,
    );
    stats(
        "offline code typed -> pam_authenticate returned",
        to_verdict,
    );
}

/// Idle connections (opened, nothing sent) from many addresses against a
/// relay with its default limits, in steps up to `n`: at each step, how
/// many the relay holds, its memory, and how long `/healthz` takes on a new
/// connection from another address (median and worst of 20).
fn idle_connections(n: usize) {
    use std::io::{Read, Write};
    raise_fd_limit(100_000);
    let relay = Relay::start_with(&[]);
    let to: std::net::SocketAddrV4 = relay
        .url
        .trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let health = |i: usize| -> Option<Duration> {
        let start = Instant::now();
        let mut s =
            connect_from(std::net::Ipv4Addr::new(127, 0, 9, (i % 250 + 1) as u8), to).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out.starts_with(b"HTTP/1.1 200").then(|| start.elapsed())
    };
    println!(
        "idle connections from 127.0.4.0/22 (200 per address), default limits, relay stderr: its caps"
    );
    println!(
        "| idle connections opened | held by the relay | relay RSS | /healthz median | /healthz worst of 20 | refused |"
    );
    println!("|---|---|---|---|---|---|");
    let mut idle = Vec::new();
    let mut i = 0usize;
    // This process needs a descriptor per idle connection too.
    let own_limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(3)
                        .and_then(|v| v.parse::<usize>().ok())
                })
        })
        .unwrap_or(1024);
    for step in [0, 1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 50_000] {
        if step > n || step + 500 > own_limit {
            break;
        }
        while i < step {
            let from = std::net::Ipv4Addr::new(
                127,
                0,
                4 + (i / 200 / 250) as u8,
                (i / 200 % 250 + 1) as u8,
            );
            if let Ok(s) = connect_from(from, to) {
                idle.push(s);
            }
            i += 1;
        }
        std::thread::sleep(Duration::from_millis(300));
        let held = std::fs::read_dir(format!("/proc/{}/fd", relay.pid())).map_or(0, |d| d.count());
        let mut times = Vec::new();
        let mut refused = 0;
        for k in 0..20 {
            match health(k) {
                Some(t) => times.push(t),
                None => refused += 1,
            }
        }
        times.sort();
        let ms = |d: Option<&Duration>| {
            d.map_or("-".into(), |d| format!("{:.2} ms", d.as_secs_f64() * 1e3))
        };
        println!(
            "| {step} | {} | {} MB | {} | {} | {refused}/20 |",
            held.saturating_sub(10),
            rss_kib(relay.pid(), "VmRSS:") / 1024,
            ms(times.get(times.len() / 2)),
            ms(times.last()),
        );
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The relays under test: `instances` processes on one store, `memory`
/// (one instance only: memory is not shared) or `redis` (a private
/// redis-server, append-only file on as advised).
struct Relays {
    relays: Vec<(Relay, tempfile::TempDir)>,
    _redis: Option<RedisServer>,
}

impl Relays {
    fn start(store: &str, instances: usize) -> Relays {
        let redis = match store {
            "memory" => {
                assert_eq!(instances, 1, "instances of the memory store share nothing");
                None
            }
            "redis" => Some(RedisServer::start(&[])),
            other => panic!("store: memory or redis, not {other:?}"),
        };
        let url = redis.as_ref().map(RedisServer::url);
        let extra: Vec<&str> = match &url {
            Some(u) => vec!["--store", u],
            None => Vec::new(),
        };
        let relays = (0..instances).map(|_| unlimited_relay(&extra)).collect();
        Relays {
            relays,
            _redis: redis,
        }
    }

    /// Where devices go (the first instance).
    fn device_url(&self) -> String {
        self.relays[0].0.url.clone()
    }

    /// Where hosts go (the last instance: another one when there are two).
    fn host_url(&self) -> String {
        self.relays[self.relays.len() - 1].0.url.clone()
    }

    fn rss(&self, field: &str) -> String {
        let each: Vec<String> = self
            .relays
            .iter()
            .map(|(r, _)| format!("{} KiB", rss_kib(r.pid(), field)))
            .collect();
        each.join(" + ")
    }
}

/// A relay whose limits do not get in a benchmark's way: every client is
/// 127.0.0.1 here, and one token or address drives thousands of logins.
fn unlimited_relay(extra: &[&str]) -> (Relay, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("relay.toml");
    std::fs::write(
        &path,
        "rate_per_sec = 1000000.0\nburst = 1000000.0\n[limits]\nmax_connections = 1000000\n\
         max_connections_per_address = 1000000\nanonymous_per_minute = 1000000.0\n\
         anonymous_burst = 1000000.0\nopen_enrollments_per_address = 1000000\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let config = path.to_string_lossy().into_owned();
    let mut args = vec!["--config", &config];
    args.extend_from_slice(extra);
    let relay = Relay::start_with(&args);
    (relay, dir)
}

fn raise_fd_limit(want: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        // Root may raise the hard limit; otherwise use what we have.
        if setrlimit(Resource::RLIMIT_NOFILE, want, want.max(hard)).is_err() {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// N logins pending at once: N devices long-polling their channels, then
/// N helpers posting a challenge and long-polling for the answer, which
/// each device sends as soon as it is woken. With two instances, devices
/// use the first and hosts the second, so every wake-up crosses over.
fn relay_load(n: usize, store: &str, instances: usize) {
    raise_fd_limit(100_000);
    let relays = Relays::start(store, instances);
    let (url, host_url) = (relays.device_url(), relays.host_url());
    runtime().block_on(async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(usize::MAX).build().unwrap_or_else(|e| panic!("{e}"));
        let setup = Instant::now();
        let gate = Arc::new(tokio::sync::Semaphore::new(256));
        let channels = set_up_channels(&client, &url, n, &gate).await;
        assert_eq!(channels.len(), n, "channel setup failed");
        println!("relay load ({store}, {instances} instance(s)): {n} channels set up in {:.1} s", setup.elapsed().as_secs_f64());
        let setup_rss = relays.rss("VmRSS:");
        // Devices: long-poll, answer what arrives.
        let mut devices = tokio::task::JoinSet::new();
        for (ch, _, dtok) in channels.clone() {
            let (client, url, gate) = (client.clone(), url.clone(), gate.clone());
            devices.spawn(async move {
                let list: PendingList = {
                    let permit = gate.acquire().await;
                    let send = client.get(format!("{url}/v1/channels/{ch}/challenges?wait=60")).bearer_auth(&dtok).send();
                    drop(permit);
                    send.await.ok()?.json().await.ok()?
                };
                let p = list.challenges.into_iter().next()?;
                let body = ChallengeResponse { response: B64.encode([5u8; 150]), signature: B64.encode([6u8; 64]), sealed: None };
                let st = client.post(format!("{url}/v1/channels/{ch}/challenges/{}/response", p.id)).bearer_auth(&dtok).json(&body).send().await.ok()?.status();
                (st == 204).then_some(())
            });
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let polling_rss = relays.rss("VmRSS:");
        // Helpers: post a challenge, wait for the answer.
        let start = Instant::now();
        let mut helpers = tokio::task::JoinSet::new();
        for (i, (ch, htok, _)) in channels.into_iter().enumerate() {
            let (client, url, gate) = (client.clone(), host_url.clone(), gate.clone());
            helpers.spawn(async move {
                let id = challenge_id(i);
                {
                    let _p = gate.acquire().await;
                    if !post_challenge(&client, &url, &ch, &htok, &id).await {
                        return None;
                    }
                }
                let posted = Instant::now();
                let resp = client.get(format!("{url}/v1/channels/{ch}/challenges/{id}/response?wait=60")).bearer_auth(&htok).send().await.ok()?;
                (resp.status() == 200).then(|| (Instant::now(), posted.elapsed()))
            });
        }
        let mut approved = 0;
        let mut last = start;
        let mut round_trips = Vec::new();
        while let Some(j) = helpers.join_next().await {
            if let Ok(Some((t, took))) = j {
                approved += 1;
                last = last.max(t);
                round_trips.push(took);
            }
        }
        while devices.join_next().await.is_some() {}
        let secs = (last - start).as_secs_f64();
        println!(
            "relay load ({store}, {instances} instance(s)): {approved}/{n} approvals delivered in {secs:.2} s = {:.0} approvals/s; relay RSS {setup_rss} after set-up, {polling_rss} with {n} devices long-polling, peak {}",
            approved as f64 / secs,
            relays.rss("VmHWM:"),
        );
        stats("  posted -> answer at the host, under that load", round_trips);
        drop(relays);
    });
}

/// `n` enrolled channels at `url`: (channel id, host token, device token).
async fn set_up_channels(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    gate: &Arc<tokio::sync::Semaphore>,
) -> Vec<(String, String, String)> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (client, url, gate) = (client.clone(), url.to_owned(), gate.clone());
        tasks.spawn(async move {
            let _p = gate.acquire().await;
            let c: EnrollmentCreated = client
                .post(format!("{url}/v1/enrollments"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let reg = DeviceRegistration {
                public_key: B64.encode([4u8; 65]),
                device_name: "load".into(),
                mac: B64.encode([1u8; 32]),
                encryption_key: None,
                passkey: None,
            };
            let d: DeviceChannel = client
                .post(format!("{url}/v1/enrollments/{}/device", c.enrollment_id))
                .json(&reg)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let r: EnrollmentResult = client
                .get(format!("{url}/v1/enrollments/{}", c.enrollment_id))
                .bearer_auth(&c.helper_token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            Some((d.channel_id, r.helper_token, d.device_token))
        });
    }
    let mut channels = Vec::new();
    while let Some(j) = tasks.join_next().await {
        if let Ok(Some(c)) = j {
            channels.push(c);
        }
    }
    channels
}

/// A challenge id for login `i`.
fn challenge_id(i: usize) -> String {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&(i as u64).to_be_bytes());
    B64.encode(id)
}

/// Posts challenge `id` on `ch`; whether the relay took it.
async fn post_challenge(
    client: &reqwest::Client,
    url: &str,
    ch: &str,
    htok: &str,
    id: &str,
) -> bool {
    let body = PostChallenge {
        id: id.to_owned(),
        expires_in: 120,
        challenge: B64.encode([7u8; 160]),
        signature: B64.encode([8u8; 64]),
        sealed: None,
    };
    let sent = client
        .post(format!("{url}/v1/channels/{ch}/challenges"))
        .bearer_auth(htok)
        .json(&body)
        .send()
        .await;
    sent.is_ok_and(|r| r.status() == 201)
}

/// N logins pending at once, as the shipped helper holds them: its host's
/// challenges posted, one long-poll for each answer, over HTTP/2 on TLS
/// (the relay's own), so the `hosts` hosts' logins share `hosts`
/// connections. Devices are woken by Web Push, not polling; once every
/// login waits, one device client answers them all. With `http1`, a plain
/// HTTP relay and one connection per waiting login instead.
fn pending_logins(n: usize, hosts: usize, http: &str) {
    raise_fd_limit(100_000);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let h2 = match http {
        "h2" => true,
        "http1" => false,
        other => panic!("h2 or http1, not {other:?}"),
    };
    let tls = h2.then(|| {
        let ca = pushmfa_tests::certs::make_ca(dir.path(), "ca");
        let (cert, key) = pushmfa_tests::certs::make_leaf(dir.path(), "ca", "relay");
        (ca, cert, key)
    });
    let (cert, key) = tls
        .as_ref()
        .map_or((String::new(), String::new()), |(_, c, k)| {
            (
                c.to_string_lossy().into_owned(),
                k.to_string_lossy().into_owned(),
            )
        });
    let extra: Vec<&str> = if h2 {
        vec!["--tls-cert", &cert, "--tls-key", &key]
    } else {
        Vec::new()
    };
    let (relay, _config) = unlimited_relay(&extra);
    let url = relay.url.clone();
    let ca = tls
        .as_ref()
        .map(|(ca, _, _)| std::fs::read(ca).unwrap_or_else(|e| panic!("{e}")));
    let client_for = move || {
        let mut b = reqwest::Client::builder().pool_max_idle_per_host(usize::MAX);
        if let Some(pem) = &ca {
            b = b.add_root_certificate(
                reqwest::Certificate::from_pem(pem).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        b.build().unwrap_or_else(|e| panic!("{e}"))
    };
    let pid = relay.pid();
    runtime().block_on(async move {
        let setup_client = client_for();
        let gate = Arc::new(tokio::sync::Semaphore::new(256));
        let channels = set_up_channels(&setup_client, &url, n, &gate).await;
        assert_eq!(channels.len(), n, "channel setup failed");
        let version = setup_client.get(format!("{url}/healthz")).send().await.map(|r| r.version());
        println!("pending logins ({http}): {n} channels set up, served as {version:?}");
        let setup_rss = rss_kib(pid, "VmRSS:");
        let host_clients: Vec<reqwest::Client> = (0..hosts).map(|_| client_for()).collect();
        let posted = Arc::new(tokio::sync::Barrier::new(n + 1));
        let mut waiting = tokio::task::JoinSet::new();
        for (i, (ch, htok, _)) in channels.iter().cloned().enumerate() {
            let (client, url, gate, posted) = (host_clients[i % hosts].clone(), url.clone(), gate.clone(), posted.clone());
            waiting.spawn(async move {
                let id = challenge_id(i);
                let ok = {
                    let _p = gate.acquire().await;
                    post_challenge(&client, &url, &ch, &htok, &id).await
                };
                posted.wait().await;
                if !ok {
                    return None;
                }
                let resp = client.get(format!("{url}/v1/channels/{ch}/challenges/{id}/response?wait=60")).bearer_auth(&htok).send().await.ok()?;
                (resp.status() == 200).then(Instant::now)
            });
        }
        posted.wait().await;
        // Time for every long-poll to arrive and park.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let pending_rss = rss_kib(pid, "VmRSS:");
        let start = Instant::now();
        let device = client_for();
        let mut answers = tokio::task::JoinSet::new();
        for (i, (ch, _, dtok)) in channels.into_iter().enumerate() {
            let (client, url, gate) = (device.clone(), url.clone(), gate.clone());
            answers.spawn(async move {
                let _p = gate.acquire().await;
                let body = ChallengeResponse { response: B64.encode([5u8; 150]), signature: B64.encode([6u8; 64]), sealed: None };
                let id = challenge_id(i);
                let _ = client.post(format!("{url}/v1/channels/{ch}/challenges/{id}/response")).bearer_auth(&dtok).json(&body).send().await;
            });
        }
        while answers.join_next().await.is_some() {}
        let mut approved = 0;
        let mut last = start;
        while let Some(j) = waiting.join_next().await {
            if let Ok(Some(t)) = j {
                approved += 1;
                last = last.max(t);
            }
        }
        println!(
            "pending logins ({http}): {n} logins from {hosts} hosts pending: relay RSS {setup_rss} KiB after set-up, {pending_rss} KiB with them pending ({:.1} KiB per login above set-up), peak {} KiB; {approved}/{n} answers delivered in {:.2} s",
            pending_rss.saturating_sub(setup_rss) as f64 / n as f64,
            rss_kib(pid, "VmHWM:"),
            (last - start).as_secs_f64(),
        );
        drop(relay);
    });
}

/// Protocol v2's added host work per login: sealing a challenge to a
/// device (HPKE: one ephemeral key, two ECDH) and opening its answer (one
/// ECDH), N times each, in this process.
fn sealed_cost(n: usize) {
    use pushmfa_protocol::sealed::{Binding, Direction, OpeningKey, seal};
    let device = OpeningKey::generate().unwrap_or_else(|e| panic!("{e}"));
    let host = OpeningKey::generate().unwrap_or_else(|e| panic!("{e}"));
    let binding = Binding {
        channel: "Xw3Zr8Qk2LmN5pTa9VbC1d",
        challenge_id: "EREREREREREREREREREREREREREREREREREREREREREf",
    };
    let challenge = vec![7u8; 300];
    let answer = vec![5u8; 280];
    let (mut seals, mut opens) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        let to_device = seal(
            &device.public_key(),
            Direction::ToDevice,
            binding,
            &challenge,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        seals.push(t.elapsed());
        let to_host = seal(&host.public_key(), Direction::ToHost, binding, &answer)
            .unwrap_or_else(|e| panic!("{e}"));
        let t = Instant::now();
        let opened = host
            .open(Direction::ToHost, binding, &to_host)
            .unwrap_or_else(|e| panic!("{e}"));
        opens.push(t.elapsed());
        assert_eq!(opened.len(), answer.len());
        assert_eq!(to_device.len(), 1105);
    }
    stats("seal a challenge to a device (host)", seals);
    stats("open a device's answer (host)", opens);
    // User verification: the passkey assertion check (ECDSA with ring).
    use pushmfa_protocol::envelope::Assertion;
    use pushmfa_protocol::passkey::Passkey;
    use ring::digest::{SHA256, digest};
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .unwrap_or_else(|e| panic!("{e}"));
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .unwrap_or_else(|e| panic!("{e}"));
    let passkey = Passkey {
        origin: "https://relay.example.org".into(),
        credential_id: vec![7; 16],
        public_key: key
            .public_key()
            .as_ref()
            .try_into()
            .unwrap_or_else(|e| panic!("{e}")),
    };
    let mut auth = digest(&SHA256, b"relay.example.org").as_ref().to_vec();
    auth.extend_from_slice(&[0x05, 0, 0, 0, 1]);
    let client = serde_json::to_vec(&serde_json::json!({
        "type": "webauthn.get",
        "challenge": B64.encode(digest(&SHA256, &answer)),
        "origin": "https://relay.example.org",
    }))
    .unwrap_or_default();
    let signed = [auth.as_slice(), digest(&SHA256, &client).as_ref()].concat();
    let assertion = Assertion {
        signature: key
            .sign(&rng, &signed)
            .unwrap_or_else(|e| panic!("{e}"))
            .as_ref()
            .to_vec(),
        authenticator_data: auth,
        client_data_json: client,
    };
    let mut checks = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        passkey
            .verify(&answer, &assertion)
            .unwrap_or_else(|e| panic!("{e}"));
        checks.push(t.elapsed());
    }
    stats("check a passkey assertion (host)", checks);
}

/// One login at a time: a device long-polls the first instance, a host
/// posts on the last; the time until the device's poll returns (the
/// wake-up, across instances when there are two), `rounds` times.
fn wake_latency(rounds: usize, store: &str, instances: usize) {
    let relays = Relays::start(store, instances);
    let (url, host_url) = (relays.device_url(), relays.host_url());
    runtime().block_on(async move {
        let http = reqwest::Client::new();
        let (result, device) = client::enroll(&http, &url, &url, &host_url).await;
        let (ch, htok, dtok) = (result.channel_id, result.helper_token, device.device_token);
        let mut took = Vec::new();
        for round in 0..rounds {
            let (_, etag, _) = client::pending(&http, &url, &ch, &dtok, None, 0).await;
            let poll = {
                let (http, url, ch, dtok) = (http.clone(), url.clone(), ch.clone(), dtok.clone());
                tokio::spawn(async move {
                    let (status, _, _) = client::pending(&http, &url, &ch, &dtok, Some(&etag), 30).await;
                    (Instant::now(), status.as_u16())
                })
            };
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(round as u64).to_be_bytes());
            let id = B64.encode(id);
            let posted = Instant::now();
            let st = client::post_challenge(&http, &host_url, &ch, &htok, &id, 60).await;
            assert_eq!(st, 201);
            let (woke, status) = poll.await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(status, 200);
            took.push(woke - posted);
            let _ = http.delete(format!("{host_url}/v1/channels/{ch}/challenges/{id}")).bearer_auth(&htok).send().await;
        }
        stats(&format!("wake-up, device on instance 1 of {instances}, host on instance {instances} ({store})"), took);
    });
}

/// ssh with publickey + push (approved as soon as the prompt shows, by the
/// askpass calling the authenticator CLI) against the same sshd setup with
/// publickey only: the time pushmfa adds to an ssh login. Root only.
fn ssh_overhead(runs: usize) {
    use pushmfa_tests::sshd::{Act, Sshd, SystemUser, ssh};
    if !pushmfa_tests::is_root() {
        eprintln!("ssh: needs root (sshd, useradd, mount namespaces)");
        return;
    }
    let helper_user = SystemUser::create("pmfah");
    let user = SystemUser::create("pmfab");
    let (relay, _config) = unlimited_relay(&[]);
    let mut e = TestEnv::new(&relay_config(
        &relay.url,
        "[push]\nrate_limit_count = 1000\n",
    ));
    e.helper_runs_as(helper_user.uid, helper_user.gid);
    e.start_helper();
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, &user.name);
    let stack = format!(
        "auth required {} socket={}\naccount required pam_permit.so\nsession required pam_permit.so\n",
        pushmfa_tests::module_path().display(),
        e.socket.display()
    );
    let auth = pushmfa_tests::bin("pushmfa-authenticator");
    let with_push = Sshd::start_with(
        &e.dir.path().join("sshd-push"),
        &user,
        &stack,
        "publickey,keyboard-interactive",
    );
    let key_only = Sshd::start_with(&e.dir.path().join("sshd-key"), &user, &stack, "publickey");
    let measure = |sshd: &Sshd, plan: &[Act]| -> Vec<Duration> {
        (0..runs + 2)
            .map(|_| {
                let r = ssh(
                    sshd,
                    &user.name,
                    &auth,
                    phone.store_path(),
                    plan,
                    &[],
                    "true",
                );
                assert_eq!(r.status, Some(0), "{}", r.stderr);
                r.took
            })
            .skip(2)
            .collect()
    };
    let push = measure(&with_push, &[Act::Approve]);
    let key = measure(&key_only, &[]);
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    stats("ssh publickey only", key.clone());
    stats(
        "ssh publickey + push approved at once (askpass runs the authenticator CLI)",
        push.clone(),
    );
    println!(
        "ssh: push adds {:.1} ms to the median login",
        (median(&push).as_secs_f64() - median(&key).as_secs_f64()) * 1e3
    );
}

/// Wall-clock milliseconds since the epoch (the browser reports its
/// timestamps the same way, from the same clock).
fn epoch_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v.max(0.0) / 1000.0)
}

/// The phone web app in headless Chromium: a push login from
/// `pam_authenticate` to the request visible on the phone, and from the
/// Approve tap to PAM_SUCCESS; the app's size and a throttled cold start.
fn webapp(rounds: usize) {
    use pushmfa_tests::webapp::BrowserPhone;
    use serde_json::json;
    let (relay, e) = push_env();
    let mut phone = BrowserPhone::start(&[]);
    phone.enroll(&e, &relay.url, "alice", "bench phone");
    let (tx, rx) = std::sync::mpsc::channel::<u8>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(f64, f64)>();
    let browser = std::thread::spawn(move || {
        while let Ok(number) = rx.recv() {
            let card = phone.call(json!({"cmd": "wait_request"}));
            phone.call(json!({"cmd": "type", "digits": format!("{number:02}")}));
            let pressed = phone.call(json!({"cmd": "press", "button": "Approve"}));
            let _ = done_tx.send((
                card["shownAt"].as_f64().unwrap_or(0.0),
                pressed["answeredAt"].as_f64().unwrap_or(0.0),
            ));
        }
        phone
    });
    let (mut visible, mut tap_to_success) = (Vec::new(), Vec::new());
    for i in 0..rounds + 5 {
        let tx = tx.clone();
        let start = epoch_ms();
        // wait mode (no remote host): the helper returns as soon as it has
        // the approval, without waiting for an Enter.
        let (code, seen) = e
            .pam("bench", "alice")
            .on_info(move |text| {
                let _ = tx.send(number_in(text));
            })
            .run();
        let end = epoch_ms();
        assert_eq!(code, rc::SUCCESS, "{seen:?}\n{}", e.helper_log());
        let (shown, answered) = done_rx.recv().unwrap_or((0.0, 0.0));
        if i >= 5 {
            visible.push(ms(shown - start));
            tap_to_success.push(ms(end - answered));
        }
    }
    drop(tx);
    let mut phone = browser.join().unwrap_or_else(|_| panic!("browser thread"));
    stats(
        "web app: pam_authenticate start -> request visible on the phone",
        visible,
    );
    stats(
        "web app: Approve tapped -> pam_authenticate returned PAM_SUCCESS",
        tap_to_success,
    );
    let cost = phone.call(json!({"cmd": "sealedCost", "n": 500}));
    let times = |k: &str| -> Vec<Duration> {
        cost[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_f64())
                    .map(|ms| Duration::from_secs_f64(ms / 1e3))
                    .collect()
            })
            .unwrap_or_default()
    };
    stats("web app: open a sealed request (WebCrypto)", times("opens"));
    stats(
        "web app: seal an answer to the host (WebCrypto)",
        times("seals"),
    );
    let cold = phone.call(json!({"cmd": "first_render", "url": format!("{}/app/", relay.url)}));
    println!(
        "web app cold start, 4x CPU slowdown, 150 ms RTT, 1.6 Mbit/s: first contentful paint {:.0} ms, ready {:.0} ms, {} bytes transferred",
        cold["fcp"].as_f64().unwrap_or(-1.0),
        cold["ready"].as_f64().unwrap_or(-1.0),
        cold["bytes"]
    );
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // relay and wake: [memory|redis] [instances]
    let store = std::env::args().nth(3).unwrap_or_else(|| "memory".into());
    let instances: usize = std::env::args()
        .nth(4)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    match what.as_str() {
        "argon2" => argon2(),
        "login" => login(),
        "concurrent" => concurrent(),
        "push" => push(),
        "relay" => relay_load(n, &store, instances),
        "wake" => wake_latency(n.min(10_000), &store, instances),
        "idle" => idle_connections(n),
        "sealed" => sealed_cost(n.min(100_000)),
        "offline" => offline(),
        // pending N HOSTS [h2|http1]
        "pending" => pending_logins(
            n,
            std::env::args()
                .nth(3)
                .and_then(|v| v.parse().ok())
                .unwrap_or(100),
            &std::env::args().nth(4).unwrap_or_else(|| "h2".into()),
        ),
        "ssh" => ssh_overhead(20),
        "webapp" => webapp(n.min(1000)),
        "all" => {
            argon2();
            login();
            concurrent();
            push();
            relay_load(n, "memory", 1);
        }
        other => {
            eprintln!(
                "usage: pushmfa-bench [argon2|login|concurrent|push|relay [N [memory|redis [INSTANCES]]]|wake [N [memory|redis [INSTANCES]]]|idle [N]|pending [N [HOSTS [h2|http1]]]|sealed [N]|offline|ssh|webapp [N]|all] (got {other})"
            );
            std::process::exit(2);
        }
    }
}
