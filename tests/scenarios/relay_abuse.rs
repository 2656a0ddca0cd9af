//! The real relay binary under simple abuse from loopback addresses of
//! their own (127.0.0.0/8 is all ours): idle connections under
//! `ulimit -n 1024`, slowloris heads and bodies, an enrollment flood from
//! one address while another host enrolls, too many long-polls per token.

use pushmfa_tests::push::{EnrollRun, Phone, Relay, relay_config};
use pushmfa_tests::{TestEnv, connect_from};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

/// A relay with `relay.toml` text `config` (the file stays in `dir`).
fn relay(config: &str, files: Option<u64>) -> (Relay, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("{e}"));
    let p = path.to_string_lossy().into_owned();
    let args = ["--config", p.as_str()];
    let relay = match files {
        Some(n) => Relay::start_with_open_files(&args, n),
        None => Relay::start_with(&args),
    };
    (relay, dir)
}

fn addr(relay: &Relay) -> SocketAddrV4 {
    relay
        .url
        .trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", relay.url))
}

/// One HTTP/1.1 request on a new connection from `from`; the status code,
/// or None if the relay refused or cut the connection.
fn http_from(from: Ipv4Addr, to: SocketAddrV4, request: &str) -> Option<(u16, String)> {
    let mut s = connect_from(from, to).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text.split(' ').nth(1)?.parse().ok()?;
    Some((code, text))
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Lets this test process hold a few thousand sockets.
fn raise_own_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max.min(65_536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

#[test]
fn idle_connections_under_ulimit_1024_do_not_stop_the_relay() {
    raise_own_open_files();
    let (relay, _dir) = relay("[limits]\nheader_timeout_secs = 4\n", Some(1024));
    let to = addr(&relay);
    let me = Ipv4Addr::new(127, 0, 0, 1);

    // 1,100 idle connections from one address: past its 256 the relay
    // closes them at once, and it never runs out of descriptors.
    let mut idle = Vec::new();
    for _ in 0..1100 {
        if let Ok(s) = connect_from(me, to) {
            idle.push(s);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let fds = open_fds(relay.pid());
    let started = Instant::now();
    let health = http_from(Ipv4Addr::new(127, 0, 0, 2), to, &get("/healthz"));
    let took = started.elapsed();
    println!(
        "one address, 1,100 idle connections: relay holds {fds} descriptors; /healthz from another address in {:.1} ms",
        took.as_secs_f64() * 1e3
    );
    assert_eq!(health.map(|h| h.0), Some(200));
    assert!(fds < 400, "{fds} descriptors open");

    // The idle ones are closed after the header timeout.
    std::thread::sleep(Duration::from_secs(5));
    let after = open_fds(relay.pid());
    println!("after the header timeout: {after} descriptors");
    assert!(after < 64, "{after} descriptors still open");
    drop(idle);

    // From many addresses: the relay stops at its cap below the file
    // limit, keeps serving, and recovers when the idle ones time out.
    let mut idle = Vec::new();
    for i in 0..1100u32 {
        let from = Ipv4Addr::new(127, 0, 1, (i % 20 + 1) as u8);
        if let Ok(s) = connect_from(from, to) {
            idle.push(s);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let fds = open_fds(relay.pid());
    println!("20 addresses, 1,100 idle connections: relay holds {fds} descriptors");
    assert!(fds < 1024 - 32, "{fds} descriptors open");
    let started = Instant::now();
    let mut healthy = None;
    while started.elapsed() < Duration::from_secs(8) {
        healthy = http_from(Ipv4Addr::new(127, 0, 0, 3), to, &get("/healthz"));
        if healthy.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "/healthz from a new address answered after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(healthy.map(|h| h.0), Some(200));
}

#[test]
fn slow_heads_and_bodies_are_cut_off() {
    let (relay, _dir) = relay("[limits]\nheader_timeout_secs = 2\n", None);
    let to = addr(&relay);
    let me = Ipv4Addr::new(127, 0, 0, 1);

    // A head sent a byte at a time: closed after ~2 s, however steady.
    let mut s = connect_from(me, to).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let mut cut = false;
    for b in b"GET /healthz HTTP/1.1\r\nHost: relay\r\nX-Slow: "
        .iter()
        .chain([b'a'; 100].iter())
    {
        if s.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(1))).ok();
    let closed = cut || s.read_to_end(&mut rest).is_ok();
    let took = started.elapsed();
    println!("slow head cut after {:.1} s", took.as_secs_f64());
    assert!(closed && took < Duration::from_secs(6), "{took:?}");

    // A body sent a byte at a time: 408 after ~2 s.
    let mut s = connect_from(me, to).unwrap_or_else(|e| panic!("{e}"));
    s.write_all(b"POST /v1/enrollments HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let writer = {
        let mut w = s.try_clone().unwrap_or_else(|e| panic!("{e}"));
        std::thread::spawn(move || {
            for _ in 0..50 {
                if w.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let mut head = [0u8; 64];
    s.set_read_timeout(Some(Duration::from_secs(8))).ok();
    let n = s.read(&mut head).unwrap_or(0);
    let took = started.elapsed();
    let _ = writer.join();
    let text = String::from_utf8_lossy(&head[..n]).into_owned();
    println!(
        "slow body answered after {:.1} s: {}",
        took.as_secs_f64(),
        text.lines().next().unwrap_or("")
    );
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[test]
fn an_enrollment_flood_from_one_address_does_not_stop_another_host() {
    let (relay, _dir) = relay(
        "[limits]\nanonymous_burst = 30.0\nopen_enrollments_per_address = 10\n",
        None,
    );
    let to = addr(&relay);
    let flooder = Ipv4Addr::new(127, 0, 0, 2);
    let mut codes = Vec::new();
    for _ in 0..60 {
        let (code, text) = http_from(flooder, to, &post("/v1/enrollments", "{}"))
            .unwrap_or_else(|| panic!("no answer"));
        if code == 429 {
            assert!(
                text.to_ascii_lowercase().contains("retry-after: "),
                "{text}"
            );
        }
        codes.push((code, text));
    }
    let created = codes.iter().filter(|c| c.0 == 201).count();
    let slots_full = codes
        .iter()
        .filter(|c| c.0 == 429 && c.1.contains("already open"))
        .count();
    let rate_limited = codes
        .iter()
        .filter(|c| c.0 == 429 && c.1.contains("too many enrollment requests"))
        .count();
    println!(
        "flood of 60: {created} created, {slots_full} refused (slots), {rate_limited} refused (rate)"
    );
    assert_eq!(created, 10);
    assert_eq!(slots_full, 20);
    assert_eq!(rate_limited, 30);

    // Meanwhile a host enrolls a phone through the same relay (from
    // 127.0.0.1), and its user logs in with it.
    let mut e = TestEnv::new(&relay_config(&relay.url, ""));
    e.start_helper();
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, "alice");
    assert!(e.status("alice").enrolled);
    // A second enrollment by the same host is not held back either.
    let run = EnrollRun::start(&e, "bob");
    drop(run);
}

#[test]
fn one_token_holds_a_bounded_number_of_long_polls() {
    let (relay, _dir) = relay("[limits]\nlong_polls_per_token = 3\n", None);
    let mut e = TestEnv::new(&relay_config(&relay.url, ""));
    e.start_helper();
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, "alice");
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(e.state.join("users/alice.json")).unwrap_or_default(),
    )
    .unwrap_or_default();
    let accounts: serde_json::Value = serde_json::from_slice(
        &std::fs::read(phone.store_path().join("accounts.json")).unwrap_or_default(),
    )
    .unwrap_or_default();
    let (channel, token) = (
        state["devices"][0]["channel_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        accounts[0]["device_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    assert!(!channel.is_empty(), "{accounts}");
    let url = format!("{}/v1/channels/{channel}/challenges?wait=5", relay.url);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let statuses = rt.block_on(async {
        let client = reqwest::Client::new();
        // A first list: its ETag makes the next ones wait.
        let first = client
            .get(format!("{}/v1/channels/{channel}/challenges", relay.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let etag = first.headers()["etag"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        let polls: Vec<_> = (0..4)
            .map(|i| {
                let (client, url, token, etag) =
                    (client.clone(), url.clone(), token.clone(), etag.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(100 * i)).await;
                    let r = client
                        .get(url)
                        .bearer_auth(token)
                        .header("if-none-match", etag)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    (r.status().as_u16(), r.headers().contains_key("retry-after"))
                })
            })
            .collect();
        let mut out = Vec::new();
        for p in polls {
            out.push(p.await.unwrap_or_else(|e| panic!("{e}")));
        }
        out
    });
    println!("four long-polls on one token: {statuses:?}");
    assert_eq!(
        statuses,
        vec![(304, false), (304, false), (304, false), (429, true)]
    );
}

#[test]
fn connections_that_showed_a_token_keep_working_through_a_flood() {
    use base64::Engine;
    use serde_json::{Value, json};
    raise_own_open_files();
    let (relay, _dir) = relay("[limits]\nheader_timeout_secs = 20\n", Some(1024));
    let to = addr(&relay);
    let b64 = |n: usize| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(vec![7u8; n]);
    let url = relay.url.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = |last: u8| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let (device, helper) = (client(6), client(7));
    // A channel, as an enrollment makes one.
    let (channel, device_token, helper_token) = rt.block_on(async {
        let call = |req: reqwest::RequestBuilder| async move {
            let r = req.send().await.unwrap_or_else(|e| panic!("{e}"));
            r.json::<Value>().await.unwrap_or_default()
        };
        let created = call(
            helper
                .post(format!("{url}/v1/enrollments"))
                .json(&json!({})),
        )
        .await;
        let id = created["enrollment_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let reg = json!({"public_key": b64(65), "device_name": "phone", "mac": b64(32)});
        let ch = call(
            device
                .post(format!("{url}/v1/enrollments/{id}/device"))
                .json(&reg),
        )
        .await;
        let result = call(
            helper
                .get(format!("{url}/v1/enrollments/{id}?wait=0"))
                .bearer_auth(created["helper_token"].as_str().unwrap_or_default()),
        )
        .await;
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        (
            s(&ch["channel_id"]),
            s(&ch["device_token"]),
            s(&result["helper_token"]),
        )
    });
    assert!(!helper_token.is_empty());
    // Both sides show their tokens once on kept-alive connections.
    let list = |wait: u32| {
        device
            .get(format!(
                "{url}/v1/channels/{channel}/challenges?wait={wait}"
            ))
            .bearer_auth(&device_token)
    };
    let (listed, asked) = rt.block_on(async {
        let listed = list(0).send().await.map(|r| r.status().as_u16());
        // No such challenge, but the token is checked first.
        let asked = helper
            .get(format!(
                "{url}/v1/channels/{channel}/challenges/{}/response",
                b64(32)
            ))
            .bearer_auth(&helper_token)
            .send()
            .await
            .map(|r| r.status().as_u16());
        (listed, asked)
    });
    assert_eq!((listed.ok(), asked.ok()), (Some(200), Some(404)));

    // A flood of idle connections from 20 addresses fills every place an
    // anonymous connection may take.
    let mut idle = Vec::new();
    let flood_started = Instant::now();
    for i in 0..1100u32 {
        let from = Ipv4Addr::new(127, 0, 2, (i % 20 + 1) as u8);
        if let Ok(s) = connect_from(from, to) {
            idle.push(s);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    println!(
        "flood of {} connections in {:.1} s; relay holds {} descriptors",
        idle.len(),
        flood_started.elapsed().as_secs_f64(),
        open_fds(relay.pid())
    );
    let refused_new = http_from(Ipv4Addr::new(127, 0, 0, 8), to, &get("/healthz")).is_none();
    // The helper posts a challenge on its connection and the device's
    // connection sees it.
    let (posted, seen) = rt.block_on(async {
        let challenge =
            json!({"id": b64(32), "expires_in": 60, "challenge": b64(100), "signature": b64(64)});
        let posted = helper
            .post(format!("{url}/v1/channels/{channel}/challenges"))
            .bearer_auth(&helper_token)
            .json(&challenge)
            .send()
            .await
            .map(|r| r.status().as_u16());
        let seen = match list(0).send().await {
            Ok(r) => r.json::<Value>().await.unwrap_or_default()["challenges"]
                .as_array()
                .map_or(0, Vec::len),
            Err(e) => panic!("the device's connection failed: {e}"),
        };
        (posted, seen)
    });
    println!(
        "flood from 20 addresses: a new anonymous connection refused: {refused_new}; helper post {posted:?}; device sees {seen}"
    );
    assert!(
        refused_new,
        "the flood left room for a new anonymous connection"
    );
    assert_eq!(posted.ok(), Some(201));
    assert_eq!(seen, 1);
    drop(idle);
}
