//! The relay is untrusted: here the test acts as a malicious relay (it has
//! every token a relay has) and nothing it does can approve a login.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_protocol::relay_api::*;
use pushmfa_protocol::signed::{self, Approval, Challenge, Decision};
use pushmfa_tests::push::{Phone, Relay, number_in, relay_config};
use pushmfa_tests::{Answer, TestEnv, asks_for_a_code, rc};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use std::io::{Read, Write};
use std::time::Duration;

const SVC: &str = "pushmfa-test";

/// A signed approval (message, signature) kept for a replay.
type Captured = std::rc::Rc<std::cell::RefCell<Option<(Vec<u8>, Vec<u8>)>>>;

/// What a relay knows about a user's device: its channel id (from the
/// helper's state) and the device token (from the phone's store).
#[derive(Clone)]
struct Tokens {
    channel: String,
    device_token: String,
}

fn tokens(e: &TestEnv, phone: &Phone, user: &str) -> Tokens {
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(e.state.join(format!("users/{user}.json"))).unwrap_or_default(),
    )
    .unwrap_or_default();
    let accounts: serde_json::Value = serde_json::from_slice(
        &std::fs::read(phone.store_path().join("accounts.json")).unwrap_or_default(),
    )
    .unwrap_or_default();
    Tokens {
        channel: state["devices"][0]["channel_id"]
            .as_str()
            .unwrap_or_default()
            .into(),
        device_token: accounts[0]["device_token"]
            .as_str()
            .unwrap_or_default()
            .into(),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .unwrap_or_else(|_| panic!("keygen"));
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .unwrap_or_else(|_| panic!("key"))
}

/// As a device: the pending list on alice's channel (long-polls `wait` s).
async fn pending_list(url: &str, t: &Tokens, wait: u32) -> PendingList {
    reqwest::Client::new()
        .get(format!(
            "{url}/v1/channels/{}/challenges?wait={wait}",
            t.channel
        ))
        .bearer_auth(&t.device_token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// As the relay: the pending challenge on alice's channel. The number is
/// shown while the challenge is still on its way, and the list may wake
/// for another change first: look until it is there (5 s at most).
fn pending_challenge(url: &str, t: &Tokens) -> (String, Challenge) {
    rt().block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            let list = pending_list(url, t, 5).await;
            if let Some(p) = list.challenges.into_iter().next() {
                let c = Challenge::decode(&B64.decode(&p.challenge).unwrap_or_default())
                    .unwrap_or_else(|e| panic!("{e}"));
                return (p.id, c);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no challenge within 5 s")
    })
}

/// As the relay: deliver `approval` signed by `signer` as the answer.
fn inject(url: &str, t: &Tokens, id: &str, response: &[u8], signature: &[u8]) {
    rt().block_on(async {
        let st = reqwest::Client::new()
            .post(format!(
                "{url}/v1/channels/{}/challenges/{id}/response",
                t.channel
            ))
            .bearer_auth(&t.device_token)
            .json(&ChallengeResponse {
                response: B64.encode(response),
                signature: B64.encode(signature),
                sealed: None,
            })
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .status();
        assert_eq!(st, 204);
    });
}

fn setup() -> (Relay, TestEnv, Phone, Vec<String>) {
    let relay = Relay::start();
    let mut e = TestEnv::new(&relay_config(&relay.url, "[push]\nttl_secs = 5\n"));
    e.start_helper();
    e.service(SVC, "");
    let phone = Phone::new(&e, "phone");
    // Protocol 1: what a relay can see and do to a device that lets it
    // read requests (protocol 2's sealing is tested in sealed_relay.rs).
    let out = phone.enroll_v1(&e, "alice");
    let codes = out
        .lines()
        .filter(|l| l.len() == 19 && l.matches('-').count() == 3)
        .map(String::from)
        .collect();
    (relay, e, phone, codes)
}

/// Runs a wait-mode login in which `attack` plays the relay once the number
/// is shown; the login must not succeed by push and falls back to the code.
fn attacked_login(
    e: &TestEnv,
    codes: &[String],
    attack: impl FnMut(&str) + 'static,
) -> Vec<String> {
    let (code, seen) = e
        .pam(SVC, "alice")
        .on_info(attack)
        .answer(codes[0].as_str())
        .run();
    assert_eq!(code, rc::SUCCESS, "the recovery code still works: {seen:?}");
    assert_eq!(
        &seen[1..],
        ["error:No answer from your phone.", "prompt:Recovery code: "],
        "push must not decide"
    );
    seen
}

#[test]
fn forged_signature_and_unenrolled_key_are_rejected() {
    let (relay, e, phone, codes) = setup();
    let t = tokens(&e, &phone, "alice");
    let url = relay.url.clone();
    attacked_login(&e, &codes, move |text| {
        let (id, c) = pending_challenge(&url, &t);
        // An approval signed with the relay's own key.
        let mallory = key();
        let a = Approval::answer(
            &c,
            Decision::Approve,
            Some(number_in(text)),
            signed::device_id(mallory.public_key().as_ref()),
        );
        let bytes = a.encode();
        let sig = mallory
            .sign(&SystemRandom::new(), &bytes)
            .unwrap_or_else(|_| panic!("sign"));
        inject(&url, &t, &id, &bytes, sig.as_ref());
    });
    e.wait_for_log("push answer REJECTED user=\"alice\" service=\"pushmfa-test\": answer from a device that is not enrolled");
}

#[test]
fn tampered_fields_and_replayed_approvals_are_rejected() {
    let (relay, e, phone, codes) = setup();
    let t = tokens(&e, &phone, "alice");
    // A genuine approval from an earlier login, kept by the relay.
    let url = relay.url.clone();
    let phone_dir = phone.store_path().to_owned();
    let (code, _) = e
        .pam(SVC, "alice")
        .on_info(move |text| {
            Phone {
                dir: phone_dir.clone(),
            }
            .approve(number_in(text))
        })
        .run();
    assert_eq!(code, rc::SUCCESS);
    let accounts: serde_json::Value = serde_json::from_slice(
        &std::fs::read(phone.store_path().join("accounts.json")).unwrap_or_default(),
    )
    .unwrap_or_default();
    let device_pkcs8 = B64
        .decode(accounts[0]["pkcs8"].as_str().unwrap_or_default())
        .unwrap_or_default();
    let old: Captured = Default::default();
    // Capture what the phone signs in the next login, without delivering it.
    {
        let (url, t, old) = (url.clone(), tokens(&e, &phone, "alice"), old.clone());
        let device = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &device_pkcs8,
            &SystemRandom::new(),
        )
        .unwrap_or_else(|_| panic!("key"));
        attacked_login(&e, &codes, move |text| {
            let (id, c) = pending_challenge(&url, &t);
            // Real device key, but the relay changed the user it shows.
            let mut a = Approval::answer(
                &c,
                Decision::Approve,
                Some(number_in(text)),
                signed::device_id(device.public_key().as_ref()),
            );
            let good = a.encode();
            let good_sig = device
                .sign(&SystemRandom::new(), &good)
                .unwrap_or_else(|_| panic!("sign"))
                .as_ref()
                .to_vec();
            *old.borrow_mut() = Some((good, good_sig));
            a.context.user = "root".into();
            let bytes = a.encode();
            let sig = device
                .sign(&SystemRandom::new(), &bytes)
                .unwrap_or_else(|_| panic!("sign"));
            inject(&url, &t, &id, &bytes, sig.as_ref());
        });
    }
    e.wait_for_log("answer does not match what was issued");
    // Replay: the genuine approval of that (now expired) login, delivered to a new one.
    let replay = old
        .borrow()
        .clone()
        .unwrap_or_else(|| panic!("nothing captured"));
    let (url2, t2) = (url.clone(), tokens(&e, &phone, "alice"));
    attacked_login(&e, &codes[1..], move |_| {
        let (id, _) = pending_challenge(&url2, &t2);
        inject(&url2, &t2, &id, &replay.0, &replay.1);
    });
    e.wait_for_log("answer to another challenge");
    drop(t);
}

#[test]
fn an_answer_from_another_users_device_is_rejected() {
    let (relay, e, phone, codes) = setup();
    let bob = Phone::new(&e, "bob");
    bob.enroll_v1(&e, "bob");
    let t = tokens(&e, &phone, "alice");
    let url = relay.url.clone();
    let bob_dir = bob.store_path().to_owned();
    attacked_login(&e, &codes, move |text| {
        // The relay swaps: bob's phone gets alice's challenge and approves it.
        let (id, c) = pending_challenge(&url, &t);
        let accounts: serde_json::Value = serde_json::from_slice(
            &std::fs::read(bob_dir.join("accounts.json")).unwrap_or_default(),
        )
        .unwrap_or_default();
        let pk = B64
            .decode(accounts[0]["pkcs8"].as_str().unwrap_or_default())
            .unwrap_or_default();
        let bob_key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pk, &SystemRandom::new())
                .unwrap_or_else(|_| panic!("key"));
        let a = Approval::answer(
            &c,
            Decision::Approve,
            Some(number_in(text)),
            signed::device_id(bob_key.public_key().as_ref()),
        );
        let bytes = a.encode();
        let sig = bob_key
            .sign(&SystemRandom::new(), &bytes)
            .unwrap_or_else(|_| panic!("sign"));
        inject(&url, &t, &id, &bytes, sig.as_ref());
    });
    e.wait_for_log("answer from a device that is not enrolled for this user");
}

#[test]
fn a_key_injected_at_enrollment_is_refused() {
    let relay = Relay::start();
    let mut e = TestEnv::new(&relay_config(&relay.url, ""));
    e.start_helper();
    let mut cli = std::process::Command::new(pushmfa_tests::bin("pushmfa"))
        .arg("--socket")
        .arg(&e.socket)
        .args(["enroll", "--user", "alice"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{err}"));
    let mut stdout = cli.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("\npushmfa://") {
        let n = stdout.read(&mut buf).unwrap_or(0);
        assert!(n > 0, "no URI: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let uri = seen
        .lines()
        .find(|l| l.starts_with("pushmfa://"))
        .unwrap_or_default()
        .to_owned();
    let enrollment_id = uri
        .split("&id=")
        .nth(1)
        .and_then(|r| r.split('&').next())
        .unwrap_or_default()
        .to_owned();
    // The relay knows the enrollment id but not the secret: it registers its own key with a made-up MAC.
    let mallory = key();
    rt().block_on(async {
        let st = reqwest::Client::new()
            .post(format!(
                "{}/v1/enrollments/{enrollment_id}/device",
                relay.url
            ))
            .json(&DeviceRegistration {
                public_key: B64.encode(mallory.public_key().as_ref()),
                device_name: "evil".into(),
                mac: B64.encode([0u8; 32]),
                encryption_key: None,
                passkey: None,
            })
            .send()
            .await
            .unwrap_or_else(|err| panic!("{err}"))
            .status();
        assert_eq!(st, 201);
    });
    let out = cli.wait_with_output().unwrap_or_else(|err| panic!("{err}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad MAC") && stderr.contains("nothing was enrolled"),
        "{stderr}"
    );
    e.wait_for_log("ENROLLMENT REJECTED user=\"alice\"");
    assert!(!e.status("alice").enrolled);
}

/// A "relay" that answers every request with `response` (raw HTTP).
fn fake_relay(response: Vec<u8>) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|err| panic!("{err}"));
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    listener.set_nonblocking(false).ok();
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(50) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let mut buf = [0u8; 65536];
            let _ = s.read(&mut buf);
            let _ = s.write_all(&response);
        }
    });
    (url, handle)
}

/// Restarts the helper with `url` as its relay, and `extra` (once) at the
/// end of its configuration.
fn use_relay(e: &mut TestEnv, url: &str, extra: &str) {
    e.kill_helper();
    let old = std::fs::read_to_string(&e.config).unwrap_or_default();
    let mut cfg: String = old
        .lines()
        .map(|l| {
            if l.starts_with("url = ") {
                format!("url = \"{url}\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    if !extra.is_empty() && !old.contains(extra.trim_end()) {
        cfg.push('\n');
        cfg.push_str(extra);
    }
    std::fs::write(&e.config, cfg).unwrap_or_else(|err| panic!("{err}"));
    e.start_helper();
}

#[test]
fn garbage_and_oversized_relay_answers_fail_cleanly() {
    let (_relay, mut e, _phone, codes) = setup();
    let huge = "x".repeat(MAX_BODY_LEN * 4);
    for (i, (name, body)) in [
        ("garbage", "HTTP/1.1 201 Created\r\ncontent-length: 9\r\nconnection: close\r\n\r\n\u{0}garbage!".to_string()),
        ("not http", "\u{0}\u{1}\u{2}\r\n\r\n".to_string()),
        (
            "oversized",
            format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{huge}", huge.len()),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (url, _h) = fake_relay(body.into_bytes());
        use_relay(&mut e, &url, "");
        // Wait mode: the push step must end without a decision, then the code works.
        let (code, seen) = e.pam(SVC, "alice").on_info(|_| {}).answer(Answer::Text(codes[i].clone())).run();
        assert_eq!(code, rc::SUCCESS, "{name}: {seen:?}");
        let fell_back = seen.iter().any(|s| s == "error:Your phone cannot be reached right now." || s == "error:No answer from your phone.");
        assert!(fell_back, "{name}: {seen:?}");
        assert!(seen.last().is_some_and(|s| asks_for_a_code(s)), "{name}: {seen:?}");
    }
}

/// Issue finding: with `failmode = "safe"`, a relay that answered (500, a
/// 200 with garbage, not HTTP at all) counted as unreachable and let the
/// login through with no second factor. Only a relay that cannot be
/// reached may; any answer falls back to the recovery code.
#[test]
fn failmode_safe_never_turns_a_relay_answer_into_a_login() {
    let (_relay, mut e, _phone, codes) = setup();
    let cases = [
        (
            "500",
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ),
        (
            "200 garbage",
            "HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\n\u{0}garbage!",
        ),
        ("not http", "\u{0}\u{1}\u{2}\r\n\r\n"),
    ];
    for (i, (name, answer)) in cases.into_iter().enumerate() {
        let (url, _h) = fake_relay(answer.as_bytes().to_vec());
        use_relay(&mut e, &url, "[policy]\nfailmode = \"safe\"\n");
        // Nothing typed: a login that passes here passed with no factor at all.
        let (code, seen) = e
            .pam(SVC, "alice")
            .on_info(|_| {})
            .answer(Answer::Fail)
            .run();
        assert_ne!(
            code,
            rc::SUCCESS,
            "{name}: the relay's answer let the login through: {seen:?}"
        );
        assert!(seen.iter().any(|s| asks_for_a_code(s)), "{name}: {seen:?}");
        let log = e.wait_for_log("asking for a recovery code");
        assert!(!log.contains("FAILMODE SAFE"), "{name}: {log}");
        assert!(
            log.contains("failmode does not apply to an answer"),
            "{name}: {log}"
        );
        // The code still works.
        let (code, _) = e
            .pam(SVC, "alice")
            .on_info(|_| {})
            .answer(Answer::Text(codes[i].clone()))
            .run();
        assert_eq!(code, rc::SUCCESS, "{name}");
    }
    // The helper says at start-up what "safe" gives away.
    let log = e.helper_log();
    assert!(log.contains("policy.failmode = \"safe\""), "{log}");
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Review finding: relay answers were read whole before the size check (a
/// 50 MB answer grew the helper by 50 MB; error bodies were not capped at
/// all). Now reading stops at the cap, whatever the body's length.
#[test]
fn a_huge_relay_answer_is_not_read_into_memory() {
    let (_relay, mut e, _phone, codes) = setup();
    let mut huge = String::from(
        "HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    );
    let chunk = "x".repeat(1 << 20);
    for _ in 0..50 {
        huge.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    huge.push_str("0\r\n\r\n");
    let (url, _h) = fake_relay(huge.into_bytes());
    use_relay(&mut e, &url, "");
    let before = peak_rss_kib(e.helper_pid());
    let (code, seen) = e
        .pam(SVC, "alice")
        .on_info(|_| {})
        .answer(Answer::Text(codes[0].clone()))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    let grown = peak_rss_kib(e.helper_pid()).saturating_sub(before);
    assert!(
        grown < 20 * 1024,
        "the helper grew by {grown} KiB reading a 50 MB answer"
    );
    assert!(
        e.helper_log().contains("error body too large"),
        "{}",
        e.helper_log()
    );
}

/// Registers `public_key` for the enrollment behind `uri` with a MAC under
/// the real secret (a device that scanned the code); returns the device's
/// token for its channel.
fn register_with_valid_mac(uri: &str, public_key: &[u8]) -> DeviceChannel {
    let u = pushmfa_protocol::enroll::EnrollUri::parse(uri).unwrap_or_else(|e| panic!("{e}"));
    let host_id = signed::host_id(&u.host_key);
    let mac = pushmfa_protocol::enroll::registration_mac(
        &u.secret,
        &u.enrollment_id,
        &host_id,
        public_key,
        "odd phone",
    );
    rt().block_on(async {
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/v1/enrollments/{}/device",
                u.relay, u.enrollment_id
            ))
            .json(&DeviceRegistration {
                public_key: B64.encode(public_key),
                device_name: "odd phone".into(),
                mac: B64.encode(mac),
                encryption_key: None,
                passkey: None,
            })
            .send()
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap_or_else(|err| panic!("{err}"))
    })
}

/// The host's verdict as the registered device receives it, with whether
/// its signature verifies under the host key from the QR code.
fn outcome_for(uri: &str, device_token: &str, public_key: &[u8]) -> (EnrollmentOutcome, bool) {
    let u = pushmfa_protocol::enroll::EnrollUri::parse(uri).unwrap_or_else(|e| panic!("{e}"));
    let outcome: EnrollmentOutcome = rt().block_on(async {
        let resp = reqwest::Client::new()
            .get(format!(
                "{}/v1/enrollments/{}/outcome?wait=10",
                u.relay, u.enrollment_id
            ))
            .bearer_auth(device_token)
            .send()
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(resp.status(), 200, "no verdict within 10 s");
        resp.json().await.unwrap_or_else(|err| panic!("{err}"))
    });
    let message = signed::enrollment_outcome(&u.enrollment_id, public_key, outcome.accepted);
    let sig = B64.decode(&outcome.signature).unwrap_or_default();
    let signed_by_host = signed::verify(&u.host_key, &message, &sig).is_ok();
    (outcome, signed_by_host)
}

#[test]
fn a_key_that_is_not_a_curve_point_is_refused_and_the_device_is_told() {
    let relay = Relay::start();
    let mut e = TestEnv::new(&relay_config(&relay.url, ""));
    e.start_helper();
    let mut run = pushmfa_tests::push::EnrollRun::start(&e, "alice");
    let uri = run.line_starting("pushmfa://");
    // 65 bytes with the right prefix and a valid MAC, but not a P-256 point.
    let bogus = [4u8; 65];
    let channel = register_with_valid_mac(&uri, &bogus);
    let (outcome, signed_by_host) = outcome_for(&uri, &channel.device_token, &bogus);
    assert!(!outcome.accepted);
    assert!(signed_by_host, "the refusal carries the host's signature");
    assert!(
        outcome.message.contains("not a valid P-256 public key"),
        "{}",
        outcome.message
    );
    let out = run.finish_failed();
    assert!(
        out.contains("not a valid P-256 point; nothing was enrolled"),
        "{out}"
    );
    e.wait_for_log(
        "ENROLLMENT REJECTED user=\"alice\": the device's public key is not a point on P-256",
    );
    assert!(!e.status("alice").enrolled);
}

#[test]
fn a_device_is_enrolled_only_when_the_host_says_so_with_its_key() {
    let relay = Relay::start();
    let mut e = TestEnv::new(&relay_config(&relay.url, ""));
    e.start_helper();
    let mut run = pushmfa_tests::push::EnrollRun::start(&e, "alice");
    let uri = run.line_starting("pushmfa://");
    let device = key();
    let public = device.public_key().as_ref().to_vec();
    let channel = register_with_valid_mac(&uri, &public);
    let (outcome, signed_by_host) = outcome_for(&uri, &channel.device_token, &public);
    assert!(outcome.accepted && signed_by_host && outcome.message.is_empty());
    run.finish("a valid registration");
    assert!(e.status("alice").enrolled);
}

/// As a device: waits (up to 5 s) until challenge `id` is offered again
/// with the host's reason for refusing the last answer.
fn refusal_shown(url: &str, t: &Tokens, id: &str) -> String {
    rt().block_on(async {
        for _ in 0..50 {
            let list = pending_list(url, t, 0).await;
            if let Some(reason) = list
                .challenges
                .into_iter()
                .find(|p| p.id == id)
                .and_then(|p| p.refused)
            {
                return reason;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("challenge {id} was not offered again with a refusal")
    })
}

#[test]
fn a_refused_answer_leaves_the_request_open_for_the_real_phone() {
    let (relay, e, phone, _codes) = setup();
    let t = tokens(&e, &phone, "alice");
    let url = relay.url.clone();
    let real_phone = std::rc::Rc::new(std::cell::RefCell::new(None));
    let started = real_phone.clone();
    let (code, seen) = e
        .pam(SVC, "alice")
        .on_info(move |text| {
            // Someone with the device token answers first, with a key that is not enrolled.
            let (id, c) = pending_challenge(&url, &t);
            let mallory = key();
            let number = number_in(text);
            let bogus = Approval::answer(
                &c,
                Decision::Approve,
                Some(number),
                signed::device_id(mallory.public_key().as_ref()),
            )
            .encode();
            let sig = mallory
                .sign(&SystemRandom::new(), &bogus)
                .unwrap_or_else(|_| panic!("sign"));
            inject(&url, &t, &id, &bogus, sig.as_ref());
            // While the prompt waits: the host refuses it, the relay offers
            // the request again saying why, and the real phone answers it.
            let (url, t, phone) = (url.clone(), t.clone(), phone.clone());
            *started.borrow_mut() = Some(std::thread::spawn(move || {
                let reason = refusal_shown(&url, &t, &id);
                phone.approve(number);
                reason
            }));
        })
        .run();
    let reason = real_phone
        .borrow_mut()
        .take()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| panic!("the real phone's thread panicked"))
        })
        .unwrap_or_default();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    assert!(
        !seen.iter().any(|l| l.contains("No answer")),
        "decided by push, not after the TTL: {seen:?}"
    );
    assert!(reason.contains("not enrolled"), "{reason}");
    e.wait_for_log("push answer REJECTED user=\"alice\"");
    e.wait_for_log("outcome=success (method=push");
}
