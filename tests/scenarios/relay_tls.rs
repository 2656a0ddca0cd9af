//! The relay speaking TLS itself: a test CA and certificates made with
//! `openssl`, real logins over https, a renewed certificate picked up on
//! SIGHUP, and a certificate the helper does not trust treated as an
//! attack, never as "relay down" (not even with `failmode = "safe"`).
//!
//! The phone (the authenticator library) trusts the test CA through
//! `SSL_CERT_FILE`, set once for this test binary.

#[path = "../../relay/tests/support/redis_server.rs"]
mod redis_server;

use pushmfa_protocol::signed::Decision;
use pushmfa_tests::certs::{make_ca, make_leaf};
use pushmfa_tests::push::{Phone, Relay, number_in};
use pushmfa_tests::{Answer, TestEnv, rc};
use redis_server::RedisServer;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const SVC: &str = "pushmfa-test";

/// The test CA, made once; the phone trusts it (SSL_CERT_FILE).
fn ca_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ca = make_ca(dir.path(), "ca");
        // SAFETY: set before any test thread reads the environment (inside
        // this OnceLock, which every test passes through first).
        unsafe { std::env::set_var("SSL_CERT_FILE", &ca) };
        dir
    })
    .path()
}

/// A relay serving `cert`/`key` (copied into a directory of its own, so a
/// test can replace them).
fn tls_relay(cert: &Path, key: &Path) -> (Relay, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (c, k) = (dir.path().join("relay.pem"), dir.path().join("relay.key"));
    std::fs::copy(cert, &c).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(key, &k).unwrap_or_else(|e| panic!("{e}"));
    let relay = Relay::start_with(&[
        "--tls-cert",
        &c.to_string_lossy(),
        "--tls-key",
        &k.to_string_lossy(),
    ]);
    assert!(relay.url.starts_with("https://127.0.0.1:"), "{}", relay.url);
    (relay, dir)
}

fn helper_for(url: &str, extra: &str) -> TestEnv {
    let ca = ca_dir().join("ca.pem");
    let mut e = TestEnv::new(&format!(
        "[backend]\nkind = \"relay\"\nurl = \"{url}\"\nca_file = \"{}\"\n{extra}",
        ca.display()
    ));
    e.start_helper();
    e.service(SVC, "");
    e
}

fn approve_at_prompt(phone: &Phone) -> Answer {
    let dir = phone.store_path().to_owned();
    Answer::Reply(Box::new(move |prompt: &str| {
        let phone = Phone { dir };
        phone.decide(Decision::Approve, Some(number_in(prompt)));
        String::new()
    }))
}

/// The certificate `url` serves (PEM body) if it verifies against the test
/// CA (empty otherwise), and the protocol ALPN chose: `openssl s_client`.
fn served(url: &str) -> (String, String) {
    let host = url.trim_start_matches("https://");
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            host,
            "-alpn",
            "h2,http/1.1",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(ca_dir().join("ca.pem"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("openssl s_client: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !text.contains("Verify return code: 0 (ok)") {
        return (String::new(), String::new());
    }
    let alpn = text
        .lines()
        .find_map(|l| l.strip_prefix("ALPN protocol: "))
        .unwrap_or_default()
        .to_owned();
    let pem: String = text
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .and_then(|t| t.split("-----END CERTIFICATE-----").next())
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    (pem, alpn)
}

#[test]
fn a_push_login_over_the_relays_own_tls() {
    let dir = ca_dir();
    let (cert, key) = make_leaf(dir, "ca", "relay-a");
    let (relay, _files) = tls_relay(&cert, &key);
    let (pem, alpn) = served(&relay.url);
    assert!(!pem.is_empty(), "the certificate does not verify");
    assert_eq!(alpn, "h2", "HTTP/2 by ALPN");
    let e = helper_for(&relay.url, "");
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, "alice");
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(approve_at_prompt(&phone))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    e.wait_for_log("outcome=success (method=push");
}

#[test]
fn a_renewed_certificate_is_served_after_sighup_and_a_broken_one_is_not() {
    let dir = ca_dir();
    let (old_cert, key) = make_leaf(dir, "ca", "relay-b");
    let (relay, files) = tls_relay(&old_cert, &key);
    let (before, _) = served(&relay.url);
    assert!(!before.is_empty());
    let (new_cert, new_key) = make_leaf(dir, "ca", "relay-c");
    std::fs::copy(&new_cert, files.path().join("relay.pem")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(&new_key, files.path().join("relay.key")).unwrap_or_else(|e| panic!("{e}"));
    let hup = |pid: u32| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    };
    hup(relay.pid());
    let renewed = wait_until(|| {
        let (now, _) = served(&relay.url);
        (now != before && !now.is_empty()).then_some(now)
    });
    // A key that does not load: the relay keeps serving the renewed pair.
    std::fs::write(files.path().join("relay.key"), "garbage").unwrap_or_else(|e| panic!("{e}"));
    hup(relay.pid());
    std::thread::sleep(Duration::from_millis(300));
    let (still, _) = served(&relay.url);
    assert_eq!(
        still, renewed,
        "a broken key replaced the certificate in use"
    );
}

/// Restarts the helper with `from` replaced by `to` in its configuration.
fn restart_with(e: &mut TestEnv, from: &str, to: &str) {
    e.kill_helper();
    let config = std::fs::read_to_string(&e.config).unwrap_or_default();
    std::fs::write(&e.config, config.replace(from, to)).unwrap_or_else(|err| panic!("{err}"));
    e.start_helper();
}

/// A login with nothing typed (one that passes has no factor at all) must
/// fail and fall back to the recovery prompt; returns the helper's log.
fn refused_without_a_factor(e: &TestEnv, what: &str) -> String {
    let (code, seen) = e
        .pam(SVC, "alice")
        .on_info(|_| {})
        .answer(Answer::Fail)
        .run();
    let decided = e.wait_for_log("outcome=");
    assert_ne!(
        code,
        rc::SUCCESS,
        "{what} let the login in: {seen:?}\n{decided}"
    );
    assert!(
        seen.iter().any(|s| pushmfa_tests::asks_for_a_code(s)),
        "{seen:?}"
    );
    e.wait_for_log("asking for a recovery code")
}

fn wait_until<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..50 {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("not within 5 s")
}

#[test]
fn an_untrusted_certificate_is_never_relay_down_even_with_failmode_safe() {
    let dir = ca_dir();
    let (cert, key) = make_leaf(dir, "ca", "relay-d");
    let (relay, _files) = tls_relay(&cert, &key);
    let e = helper_for(&relay.url, "[policy]\nfailmode = \"safe\"\n");
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, "alice");
    // Someone on the path now answers in the relay's place, with a
    // certificate from a CA of their own.
    make_ca(dir, "mallory");
    let (fake, fake_key) = make_leaf(dir, "mallory", "fake");
    let (impostor, _fake_files) = tls_relay(&fake, &fake_key);
    let mut e = e;
    restart_with(&mut e, &relay.url, &impostor.url);
    let log = refused_without_a_factor(&e, "an untrusted certificate");
    assert!(!log.contains("FAILMODE SAFE"), "{log}");
    assert!(log.contains("TLS: "), "{log}");
    assert!(log.contains("not trusted"), "{log}");
}

/// The nginx block of docs/relay.md that proxies to `upstream`, as
/// printed there.
fn documented_nginx_block(upstream: &str) -> String {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/relay.md"))
            .unwrap_or_else(|e| panic!("docs/relay.md: {e}"));
    doc.split("```nginx\n")
        .skip(1)
        .filter_map(|t| t.split("```").next())
        .find(|b| b.contains(&format!("proxy_pass {upstream};")))
        .unwrap_or_else(|| panic!("docs/relay.md has no nginx block for {upstream}"))
        .to_owned()
}

/// An nginx process (killed on drop).
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs nginx with `block` (a documented one) whose listen port, and
/// certificate paths, are changed to a free port and a test certificate;
/// the nginx process and its https URL.
fn documented_nginx(block: &str, run: &Path) -> (Nginx, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    // Named per port: tests running at once share the CA's directory.
    let (cert, key) = make_leaf(ca_dir(), "ca", &format!("front-{port}"));
    let block = block
        .replace("listen 443 ", &format!("listen 127.0.0.1:{port} "))
        .replace(
            "/etc/letsencrypt/live/relay.example.org/fullchain.pem",
            &cert.to_string_lossy(),
        )
        .replace(
            "/etc/letsencrypt/live/relay.example.org/privkey.pem",
            &key.to_string_lossy(),
        );
    let r = run.display();
    let conf = run.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\npid {r}/nginx.pid;\nerror_log {r}/error.log;\n\
             events {{}}\nhttp {{\n access_log off;\n client_body_temp_path {r}/body;\n\
             proxy_temp_path {r}/proxy;\n fastcgi_temp_path {r}/fcgi;\n uwsgi_temp_path {r}/uwsgi;\n\
             scgi_temp_path {r}/scgi;\n{block}\n}}\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let test = Command::new("nginx")
        .args(["-t", "-p"])
        .arg(run)
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap_or_else(|e| panic!("nginx: {e} (scripts/install-deps.sh installs nginx-light)"));
    assert!(
        test.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&test.stderr)
    );
    let nginx = Nginx(
        Command::new("nginx")
            .arg("-p")
            .arg(run)
            .arg("-c")
            .arg(&conf)
            .spawn()
            .unwrap_or_else(|e| panic!("nginx: {e}")),
    );
    let url = format!("https://127.0.0.1:{port}");
    wait_until(|| (!served(&url).0.is_empty()).then_some(()));
    (nginx, url)
}

/// A host behind `url` with `alice` enrolled with a phone, and a login.
fn enroll_and_log_in(url: &str) -> (TestEnv, Phone) {
    let e = helper_for(url, "");
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, "alice");
    log_in(&e, &phone);
    (e, phone)
}

fn log_in(e: &TestEnv, phone: &Phone) {
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(approve_at_prompt(phone))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
}

#[test]
fn a_push_login_through_the_documented_nginx_front_end() {
    let relay = Relay::start_with(&[]);
    let relay_addr = relay.url.trim_start_matches("http://").to_owned();
    // Only the port, the certificate paths and the relay's address change.
    let block =
        documented_nginx_block("http://127.0.0.1:8480").replace("127.0.0.1:8480", &relay_addr);
    let run = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_nginx, url) = documented_nginx(&block, run.path());
    let (e, _) = enroll_and_log_in(&url);
    e.wait_for_log("outcome=success (method=push");
}

#[test]
fn pam_logins_through_the_documented_load_balancer_survive_a_relay_killed() {
    let redis = RedisServer::start(&[]);
    let store = redis.url();
    let a = Relay::start_with(&["--store", &store]);
    let mut b = Relay::start_with(&["--store", &store]);
    let block = documented_nginx_block("http://pushmfa_relays")
        .replace("10.0.0.11:8480", a.url.trim_start_matches("http://"))
        .replace("10.0.0.12:8480", b.url.trim_start_matches("http://"));
    let run = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_nginx, url) = documented_nginx(&block, run.path());
    // Enrollment and login go through the balancer, request by request to
    // either relay.
    let (e, phone) = enroll_and_log_in(&url);
    b.stop();
    log_in(&e, &phone);
    log_in(&e, &phone);
    e.wait_for_log_lines("outcome=success (method=push", 3);
}

/// The pin of `cert`'s key, as docs/relay.md says to compute it.
fn pin_of(cert: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
            cert.display()
        ))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_pinned_key_is_required_besides_the_chain() {
    let dir = ca_dir();
    let (cert, key) = make_leaf(dir, "ca", "pinned");
    let (other, _) = make_leaf(dir, "ca", "other");
    let (relay, _files) = tls_relay(&cert, &key);
    let pin = pin_of(&cert);
    assert_eq!(pin.len(), 44, "{pin}");
    let e = helper_for(
        &relay.url,
        &format!(
            "pin_sha256 = [\"{}\", \"{pin}\"]\n[policy]\nfailmode = \"safe\"\n",
            pin_of(&other)
        ),
    );
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, "alice");
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(approve_at_prompt(&phone))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");

    // Pinned to another key only: the relay's valid chain is not enough,
    // and a refused pin is no more "relay down" than a refused chain.
    let mut e = e;
    restart_with(&mut e, &format!(", \"{pin}\""), "");
    let log = refused_without_a_factor(&e, "a key that is not pinned");
    assert!(log.contains("not one of backend.pin_sha256"), "{log}");
}

/// The established TCP connections `pid` holds to `port` on loopback.
fn connections_to(pid: u32, port: u16) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|f| std::fs::read_link(f.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let remote = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        // Columns: sl local remote state ... inode (the tenth).
        .filter(|c| c.len() > 9 && c[2].ends_with(&remote) && c[3] == "01")
        .filter(|c| inodes.iter().any(|i| i == c[9]))
        .count()
}

#[test]
fn a_hosts_waiting_logins_share_one_http2_connection() {
    const LOGINS: usize = 4;
    let dir = ca_dir();
    let (cert, key) = make_leaf(dir, "ca", "relay-h2");
    let (relay, _files) = tls_relay(&cert, &key);
    let port: u16 = relay
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{}", relay.url));
    let e = helper_for(&relay.url, "[push]\nrate_limit_count = 100\n");
    let users: Vec<(String, Phone)> = (0..LOGINS)
        .map(|i| {
            let user = format!("user{i}");
            let phone = Phone::new(&e, &user);
            phone.enroll(&e, &user);
            (user, phone)
        })
        .collect();
    let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
    let gos: Vec<_> = (0..LOGINS)
        .map(|_| std::sync::mpsc::channel::<()>())
        .collect();
    let (go_txs, go_rxs): (Vec<_>, Vec<_>) = gos.into_iter().unzip();
    let (held, results) = std::thread::scope(|s| {
        let handles: Vec<_> = users
            .iter()
            .zip(go_rxs)
            .map(|((user, phone), go)| {
                let (e, ready_tx) = (&e, ready_tx.clone());
                let dir = phone.store_path().to_owned();
                s.spawn(move || {
                    let answer = move |prompt: &str| {
                        // Every login waits at its prompt until all do.
                        let _ = ready_tx.send(());
                        let _ = go.recv_timeout(Duration::from_secs(20));
                        Phone { dir: dir.clone() }.approve(number_in(prompt));
                        String::new()
                    };
                    e.pam(SVC, user)
                        .rhost("203.0.113.7")
                        .answer(Answer::Reply(Box::new(answer)))
                        .run()
                        .0
                })
            })
            .collect();
        let all_waiting = (0..LOGINS).all(|_| ready.recv_timeout(Duration::from_secs(20)).is_ok());
        // The helper posted each challenge before showing its number and
        // long-polls for each answer: give the last poll a moment to start.
        std::thread::sleep(Duration::from_millis(300));
        let held = connections_to(e.helper_pid(), port);
        for go in &go_txs {
            let _ = go.send(());
        }
        let results: Vec<i32> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or(-1))
            .collect();
        assert!(
            all_waiting,
            "not every login reached its prompt: {results:?}"
        );
        (held, results)
    });
    assert!(results.iter().all(|&r| r == rc::SUCCESS), "{results:?}");
    assert_eq!(
        held, 1,
        "{LOGINS} waiting logins held {held} connections to the relay"
    );
}
