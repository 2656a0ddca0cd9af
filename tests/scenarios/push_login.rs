//! Push logins through the real module, helper, relay and authenticator.

use pushmfa_protocol::signed::Decision;
use pushmfa_tests::push::{Phone, Relay, number_in, relay_config};
use pushmfa_tests::{Answer, TestEnv, rc};
use std::cell::RefCell;
use std::rc::Rc;

const SVC: &str = "pushmfa-test";

/// A helper with the relay as backend, `alice` enrolled with one phone.
fn setup(extra: &str) -> (Relay, TestEnv, Phone, Vec<String>) {
    let relay = Relay::start();
    let mut e = TestEnv::new(&relay_config(&relay.url, extra));
    e.start_helper();
    e.service(SVC, "");
    let phone = Phone::new(&e, "phone");
    let out = phone.enroll(&e, "alice");
    let codes: Vec<String> = out
        .lines()
        .filter(|l| l.len() == 19 && l.matches('-').count() == 3)
        .map(String::from)
        .collect();
    assert_eq!(
        codes.len(),
        10,
        "first enrollment shows recovery codes:\n{out}"
    );
    (relay, e, phone, codes)
}

/// A prompt answer that makes the phone decide, then presses Enter.
fn phone_then_enter(phone: &Phone, decision: Decision, offset: u8) -> Answer {
    let dir = phone.store_path().to_owned();
    Answer::Reply(Box::new(move |prompt: &str| {
        let phone = Phone { dir };
        let n = (number_in(prompt) + offset) % 100;
        phone.decide(decision, (decision == Decision::Approve).then_some(n));
        String::new()
    }))
}

#[test]
fn approve_in_prompt_mode_shows_the_number_first() {
    let (_relay, e, phone, _) = setup("");
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(phone_then_enter(&phone, Decision::Approve, 0))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].starts_with("prompt:Approve on your phone with number "),
        "{seen:?}"
    );
    assert!(seen[0].contains("or type a recovery code"), "{seen:?}");
    let log = e.wait_for_log("outcome=success");
    assert!(log.contains("method=push device=\"phone-phone\""), "{log}");
}

#[test]
fn approval_on_one_phone_withdraws_the_request_from_the_other() {
    let (_relay, e, phone, _) = setup("[log]\nlevel = \"debug\"\n");
    let tablet = Phone::new(&e, "tablet");
    tablet.enroll(&e, "alice");
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(phone_then_enter(&phone, Decision::Approve, 0))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    // Taken back from both: the tablet's open request, and the answered one
    // the relay keeps until the helper has decided.
    e.wait_for_log("push request withdrawn user=\"alice\" devices=2 failed=0");
    assert!(tablet.pending().is_empty());
}

#[test]
fn approve_in_wait_mode() {
    let (_relay, e, phone, _) = setup("");
    let dir = phone.store_path().to_owned();
    let (code, seen) = e
        .pam(SVC, "alice")
        .tty("pts/2")
        .on_info(move |text| Phone { dir: dir.clone() }.approve(number_in(text)))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    assert!(
        seen[0].starts_with("info:Approve on your phone with number ")
            && seen[0].contains("expires in"),
        "{seen:?}"
    );
}

#[test]
fn deny_and_wrong_number_fail() {
    let (_relay, e, phone, _) = setup("");
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("198.51.100.2")
        .answer(phone_then_enter(&phone, Decision::Deny, 0))
        .run();
    assert_eq!(code, rc::AUTH_ERR);
    assert_eq!(
        seen.last().map(String::as_str),
        Some("error:Denied on your phone.")
    );
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("198.51.100.2")
        .answer(phone_then_enter(&phone, Decision::Approve, 1))
        .run();
    assert_eq!(code, rc::AUTH_ERR);
    assert_eq!(
        seen.last().map(String::as_str),
        Some("error:The number entered on the phone did not match.")
    );
}

#[test]
fn fraud_fails_and_mutes_further_pushes_but_codes_still_work() {
    let (_relay, e, phone, codes) = setup("");
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("198.51.100.9")
        .answer(phone_then_enter(&phone, Decision::Fraud, 0))
        .run();
    assert_eq!(code, rc::AUTH_ERR);
    assert!(
        seen.last()
            .is_some_and(|l| l.contains("Reported as not you")),
        "{seen:?}"
    );
    e.wait_for_log("FRAUD REPORTED user=\"alice\"");
    // Next login: no push, straight to the recovery code, which works.
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("198.51.100.9")
        .answer(codes[0].as_str())
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    assert!(
        seen[0].contains("paused after a \"not me\" report"),
        "{seen:?}"
    );
    assert_eq!(seen[1], "prompt:Recovery code: ");
}

#[test]
fn no_answer_falls_back_to_a_recovery_code() {
    let (_relay, e, _phone, codes) = setup("[push]\nttl_secs = 5\n");
    let start = std::time::Instant::now();
    let (code, seen) = e
        .pam(SVC, "alice")
        .on_info(|_| {})
        .answer(codes[0].as_str())
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    assert!(start.elapsed() >= std::time::Duration::from_secs(5));
    assert!(
        seen[0].starts_with("info:Approve on your phone"),
        "{seen:?}"
    );
    assert_eq!(
        &seen[1..],
        ["error:No answer from your phone.", "prompt:Recovery code: "]
    );
}

#[test]
fn a_recovery_code_typed_at_the_push_prompt_works_and_withdraws_the_push() {
    let (_relay, e, phone, codes) = setup("[log]\nlevel = \"debug\"\n");
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(codes[3].as_str())
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    assert_eq!(seen.len(), 1);
    // The phone no longer offers the request nobody waits for.
    e.wait_for_log("push request withdrawn user=\"alice\" devices=1 failed=0");
    assert!(phone.pending().is_empty());
}

#[test]
fn relay_down_secure_asks_for_a_code_safe_lets_in_loudly() {
    let (mut relay, e, _phone, codes) = setup("");
    relay.stop();
    // The number is shown at once (the relay's state must not show in the
    // prompt's timing); a code typed there logs in.
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(codes[0].as_str())
        .run();
    assert_eq!(code, rc::SUCCESS);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("prompt:Approve on your phone with number"));
    // Enter at that prompt: then the user learns the phone is out of reach,
    // and is offered offline approval, whose prompt takes a recovery code.
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer("")
        .answer(codes[1].as_str())
        .run();
    assert_eq!(code, rc::SUCCESS);
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[1], "error:Your phone cannot be reached right now.");
    assert!(pushmfa_tests::asks_for_a_code(&seen[2]), "{seen:?}");

    let (mut relay, e, _phone, _) = setup("[policy]\nfailmode = \"safe\"\n");
    relay.stop();
    let (code, seen) = e.pam(SVC, "alice").rhost("203.0.113.7").answer("").run();
    assert_eq!(code, rc::SUCCESS);
    assert_eq!(seen.len(), 1, "only the number prompt: {seen:?}");
    e.wait_for_log("FAILMODE SAFE: push could not be delivered");
}

#[test]
fn push_rate_limit_holds_while_codes_work() {
    let (_relay, e, _phone, codes) = setup("[push]\nrate_limit_count = 2\n");
    // Two logins send pushes (the user types a code instead each time).
    for c in &codes[..2] {
        let (code, seen) = e
            .pam(SVC, "alice")
            .rhost("203.0.113.7")
            .answer(c.as_str())
            .run();
        assert_eq!(code, rc::SUCCESS);
        assert!(seen[0].contains("Approve on your phone"), "{seen:?}");
    }
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(codes[2].as_str())
        .run();
    assert_eq!(code, rc::SUCCESS);
    assert_eq!(
        seen,
        [
            "error:Too many approval requests recently.",
            "prompt:Recovery code: "
        ]
    );
}

#[test]
fn users_without_a_phone_see_the_same_push_prompt() {
    let (_relay, e, _phone, _) = setup("");
    e.generate("codes-only");
    let mut shapes = Vec::new();
    for user in ["alice", "codes-only", "unenrolled", "no-such-user-4711"] {
        let (code, seen) = e
            .pam(SVC, user)
            .rhost("203.0.113.7")
            .answer("0000-0000-0000-0000")
            .answer(Answer::Fail)
            .run();
        assert_eq!(code, rc::CONV_ERR, "{user}");
        // Same prompts in the same order; only the number differs.
        shapes.push(
            seen.iter()
                .map(|l| l.replace(|c: char| c.is_ascii_digit(), "#"))
                .collect::<Vec<_>>(),
        );
    }
    assert!(shapes.windows(2).all(|w| w[0] == w[1]), "{shapes:#?}");
}

#[test]
fn fifty_concurrent_push_logins_without_cross_talk() {
    let relay = Relay::start();
    let mut e = TestEnv::new(&relay_config(
        &relay.url,
        "[push]\nrate_limit_count = 100\n",
    ));
    e.start_helper();
    e.service(SVC, "");
    let users: Vec<(String, Phone)> = (0..50)
        .map(|i| {
            let user = format!("user{i}");
            let phone = Phone::new(&e, &user);
            phone.enroll(&e, &user);
            (user, phone)
        })
        .collect();
    let results: Vec<i32> = std::thread::scope(|s| {
        let handles: Vec<_> = users
            .iter()
            .map(|(user, phone)| {
                let e = &e;
                let dir = phone.store_path().to_owned();
                s.spawn(move || {
                    let seen_number = Rc::new(RefCell::new(None));
                    e.pam(SVC, user)
                        .rhost("203.0.113.7")
                        .answer(Answer::Reply(Box::new(move |prompt: &str| {
                            *seen_number.borrow_mut() = Some(number_in(prompt));
                            Phone { dir }.approve(number_in(prompt));
                            String::new()
                        })))
                        .run()
                        .0
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(-1))
            .collect()
    });
    assert!(results.iter().all(|&r| r == rc::SUCCESS), "{results:?}");
    // The helper logs before it answers, but its log reaches the test
    // through a reader thread: wait for each line rather than race it.
    for (user, _) in &users {
        e.wait_for_log(&format!("login user=\"{user}\" service=\"{SVC}\""));
    }
}

#[test]
fn prompt_text_comes_from_the_configured_template() {
    let (_relay, e, phone, _) = setup(
        "[push]\nprompt_text = \"[{host}] {user} via {service} from {rhost}: approve {number}, then Enter: \"\nhost_name = \"web-1\"\n",
    );
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(phone_then_enter(&phone, Decision::Approve, 0))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    assert!(
        seen[0].starts_with("prompt:[web-1] alice via pushmfa-test from 203.0.113.7: approve "),
        "{seen:?}"
    );
}

/// `pushmfa ARGS` run as `nobody` with `stdin`; calls `on_number` with the
/// number if the CLI asks for a device approval. Returns (success, stdout, stderr).
fn cli_as_nobody(
    e: &TestEnv,
    args: &[&str],
    stdin: &str,
    on_number: impl FnOnce(u8),
) -> (bool, String, String) {
    use std::io::{Read, Write};
    let mut child = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(pushmfa_tests::bin("pushmfa"))
        .arg("--socket")
        .arg(&e.socket)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{err}"));
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    let mut err = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    let mut on_number = Some(on_number);
    while let Ok(1) = err.read(&mut byte) {
        seen.push(byte[0]);
        let text = String::from_utf8_lossy(&seen);
        if text.ends_with("...\n") && text.contains("Approve on your phone with number ") {
            if let Some(f) = on_number.take() {
                f(number_in(text.lines().last().unwrap_or_default()));
            }
        }
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|err| panic!("{err}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&seen).into_owned(),
    )
}

#[test]
fn changing_factors_needs_a_phone_approval_or_a_recovery_code() {
    if !pushmfa_tests::is_root() {
        eprintln!("skipped: needs root to run the CLI as another user");
        return;
    }
    let relay = Relay::start();
    let mut e = TestEnv::new(&relay_config(&relay.url, ""));
    e.start_helper();
    let phone = Phone::new(&e, "nobody");
    let out = phone.enroll(&e, "nobody");
    let codes: Vec<String> = out
        .lines()
        .filter(|l| l.len() == 19 && l.matches('-').count() == 3)
        .map(String::from)
        .collect();

    // Enter = approve on the phone; the phone approves with the number shown.
    let dir = phone.store_path().to_owned();
    let (ok, stdout, stderr) = cli_as_nobody(&e, &["recovery", "generate"], "\n", |n| {
        Phone { dir }.approve(n)
    });
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("or just press Enter to approve on your phone"),
        "{stderr}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.len() == 19).count(),
        10,
        "{stdout}"
    );
    e.wait_for_log("user=\"nobody\" approved \"replace recovery codes\"");

    // The phone denies a device removal: refused, nothing removed.
    let dir = phone.store_path().to_owned();
    let (ok, _, stderr) = cli_as_nobody(&e, &["devices", "remove", "phone-nobody"], "\n", |_| {
        Phone { dir }.decide(Decision::Deny, None)
    });
    assert!(!ok);
    assert!(stderr.contains("denied on your device"), "{stderr}");
    assert_eq!(e.status("nobody").devices, 1);

    // An old code (replaced above) is no proof; a current one is.
    let (ok, _, stderr) = cli_as_nobody(
        &e,
        &["devices", "remove", "phone-nobody"],
        &format!("{}\n", codes[0]),
        |_| {},
    );
    assert!(!ok && stderr.contains("not valid"), "{stderr}");
    let fresh = stdout.lines().next().unwrap_or_default().to_owned();
    let (ok, _, stderr) = cli_as_nobody(
        &e,
        &["devices", "remove", "phone-nobody"],
        &format!("{fresh}\n"),
        |_| {},
    );
    assert!(ok, "{stderr}");
    assert_eq!(e.status("nobody").devices, 0);
}

#[test]
fn the_authenticator_cli_lists_approves_and_watches() {
    use std::process::Command;
    let (_relay, e, phone, _) = setup("");
    let cli = |args: &[&str]| {
        let out = Command::new(pushmfa_tests::bin("pushmfa-authenticator"))
            .arg("--store")
            .arg(phone.store_path())
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("{err}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, _) = cli(&["pending"]);
    assert!(ok && out.contains("no pending login requests"), "{out}");
    let (_, _, err) = cli(&["watch", "--approve"]);
    assert!(err.contains("--number"), "{err}");

    // `pending` shows the context; `approve --number` answers it.
    let store = phone.store_path().to_owned();
    let bin = pushmfa_tests::bin("pushmfa-authenticator");
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(Answer::Reply(Box::new(move |prompt: &str| {
            let run = |args: &[&str]| {
                Command::new(&bin)
                    .arg("--store")
                    .arg(&store)
                    .args(args)
                    .output()
                    .unwrap_or_else(|err| panic!("{err}"))
            };
            let listed =
                String::from_utf8_lossy(&run(&["pending", "--wait", "5"]).stdout).into_owned();
            assert!(
                listed.contains("as alice with pushmfa-test from 203.0.113.7"),
                "{listed}"
            );
            let n = number_in(prompt).to_string();
            assert!(run(&["approve", "--number", &n]).status.success());
            String::new()
        })))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");

    // `watch --deny` answers whatever arrives.
    let watcher = Command::new(pushmfa_tests::bin("pushmfa-authenticator"))
        .arg("--store")
        .arg(phone.store_path())
        .args(["watch", "--deny", "--count", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{err}"));
    let (code, seen) = e.pam(SVC, "alice").rhost("203.0.113.7").answer("").run();
    assert_eq!(code, rc::AUTH_ERR, "{seen:?}");
    let out = watcher
        .wait_with_output()
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Deny: "));
}

/// Review finding: a killed login (Ctrl-C on ssh) held the user's one push
/// slot until the TTL, so a retry at once got "Another sign-in is already
/// waiting". The helper now notices the client going away while it waits
/// for the phone, withdraws the request and frees the slot.
#[test]
fn a_killed_login_frees_the_push_slot_and_withdraws_its_request() {
    let (_relay, e, phone, _) = setup("[log]\nlevel = \"debug\"\n");
    // What the module does in wait mode, then the process dies: Begin, the
    // info line acknowledged, the socket closed while the helper waits.
    use pushmfa_protocol::frame;
    use pushmfa_protocol::ipc::{Begin, Reply, Request, Response, Step};
    let mut s = std::os::unix::net::UnixStream::connect(&e.socket)
        .unwrap_or_else(|err| panic!("connect: {err}"));
    let begin = Begin {
        user: "alice".into(),
        service: SVC.into(),
        rhost: None,
        tty: None,
        ruser: None,
        silent: false,
        after_denial: false,
    };
    frame::write_frame(&mut s, &Request::Begin(begin)).unwrap_or_else(|err| panic!("{err}"));
    let step: Response = frame::read_frame(&mut s).unwrap_or_else(|err| panic!("{err}"));
    assert!(
        matches!(&step, Response::Step(Step::Info { text, .. }) if text.contains("Approve on your phone")),
        "{step:?}"
    );
    frame::write_frame(&mut s, &Request::Reply(Reply::Shown {}))
        .unwrap_or_else(|err| panic!("{err}"));
    drop(s);
    e.wait_for_log("client went away while waiting for the phone");
    e.wait_for_log("push request withdrawn user=\"alice\" devices=1 failed=0");
    // A retry at once gets a push, and the phone shows only that one.
    let dir = phone.store_path().to_owned();
    let offered = Rc::new(RefCell::new(Vec::new()));
    let o = offered.clone();
    let (code, seen) = e
        .pam(SVC, "alice")
        .on_info(move |text| {
            let phone = Phone { dir: dir.clone() };
            *o.borrow_mut() = phone.pending();
            phone.approve(number_in(text));
        })
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    assert_eq!(offered.borrow().len(), 1, "{:?}", offered.borrow());
}

#[test]
fn a_second_relay_url_is_used_when_the_first_cannot_be_reached_and_ipv6_works() {
    // The first URL has nothing listening; the second is the relay, on
    // the IPv6 loopback.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let relay = Relay::start_on("[::1]:0");
    assert!(relay.url.starts_with("http://[::1]:"), "{}", relay.url);
    let mut e = TestEnv::new(&format!(
        "[backend]\nkind = \"relay\"\nurl = [\"http://{dead}\", \"{}\"]\n",
        relay.url
    ));
    e.start_helper();
    e.service(SVC, "");
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, "alice");
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(phone_then_enter(&phone, Decision::Approve, 0))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    e.wait_for_log("outcome=success (method=push");
}
