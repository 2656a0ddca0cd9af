//! Offline approval through the real module, helper and authenticator: the
//! relay is stopped, the QR code drawn at the prompt is read back with an
//! independent decoder, `pushmfa-authenticator offline` checks the request
//! and prints the code, and the code typed at the prompt logs in.

use pushmfa_tests::push::{Phone, Relay, relay_config};
use pushmfa_tests::qr::decode_terminal;
use pushmfa_tests::{Answer, TestEnv, bin, rc};
use std::cell::RefCell;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

const SVC: &str = "pushmfa-test";
const CODE_PROMPT: &str = "Code from your phone (or a recovery code): ";

/// A helper whose relay has been stopped, `alice` enrolled with one phone.
fn offline_setup(extra: &str) -> (TestEnv, Phone) {
    let mut relay = Relay::start();
    let mut e = TestEnv::new(&relay_config(&relay.url, extra));
    e.start_helper();
    e.service(SVC, "");
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, "alice");
    relay.stop();
    (e, phone)
}

/// What a prompt's QR code says (empty when there is none).
fn request_in(prompt: &str) -> String {
    decode_terminal(prompt).unwrap_or_default()
}

/// The request a login shows; the user then gives up (no code typed).
fn request_from_an_abandoned_login(e: &TestEnv) -> String {
    let request = Rc::new(RefCell::new(String::new()));
    let keep = request.clone();
    let (code, _) = e
        .pam(SVC, "alice")
        .answer(Answer::Reply(Box::new(move |p: &str| {
            *keep.borrow_mut() = request_in(p);
            String::new()
        })))
        .answer(Answer::Fail)
        .run();
    assert_eq!(code, rc::CONV_ERR);
    request.take()
}

/// Answers a QR prompt with the phone's code for it, keeping what was seen.
fn scan_and_answer(phone: &Phone, seen: &Rc<RefCell<Vec<String>>>) -> Answer {
    let (phone, seen) = (phone.clone(), seen.clone());
    Answer::Reply(Box::new(move |prompt: &str| {
        let request = request_in(prompt);
        let (out, code) = phone.offline_code(&request);
        seen.borrow_mut().extend([prompt.to_owned(), request, out]);
        code.unwrap_or_default()
    }))
}

#[test]
fn with_the_relay_down_the_qr_code_and_the_phones_code_log_in() {
    let (e, phone) = offline_setup("");
    let got = Rc::new(RefCell::new(Vec::new()));
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        // The push prompt comes first (the number is shown while the
        // request is on its way): Enter, as a user who approved would.
        .answer("")
        .answer(scan_and_answer(&phone, &got))
        .run();
    let got = got.borrow();
    assert_eq!(code, rc::SUCCESS, "{seen:?}\n{got:?}");
    let (prompt, request, out) = (&got[0], &got[1], &got[2]);
    // The prompt: the reason, the QR code inside 80 columns, the text.
    assert_eq!(seen[1], "error:Your phone cannot be reached right now.");
    assert!(prompt.ends_with(CODE_PROMPT), "{prompt}");
    assert!(
        prompt.lines().all(|l| l.chars().count() <= 80) || {
            // Only the request text may be longer: it is one line to copy.
            prompt
                .lines()
                .filter(|l| l.chars().count() > 80)
                .all(|l| l.starts_with("PUSHMFA-OFFLINE:"))
        }
    );
    let art_width = prompt
        .lines()
        .filter(|l| l.starts_with('█'))
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    assert!(
        (21..=80).contains(&art_width),
        "QR width {art_width}\n{prompt}"
    );
    assert!(request.starts_with("PUSHMFA-OFFLINE:"), "{request:?}");
    assert!(
        prompt.contains(&format!("\n{request}\n")),
        "the same request as text"
    );
    // The authenticator checked the host's signature and showed the context.
    assert!(
        out.contains("as alice with pushmfa-test from 203.0.113.7"),
        "{out}"
    );
    let log = e.wait_for_log("outcome=success");
    assert!(
        log.contains("method=offline device=\"phone-phone\""),
        "{log}"
    );
    assert_eq!(e.status("alice").consecutive_failures, 0);
}

#[test]
fn typing_o_at_the_push_prompt_asks_for_offline_approval() {
    // The relay runs: the phone just has no signal.
    let relay = Relay::start();
    let mut e = TestEnv::new(&relay_config(&relay.url, ""));
    e.start_helper();
    e.service(SVC, "");
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, "alice");
    let got = Rc::new(RefCell::new(Vec::new()));
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer("o")
        .answer(scan_and_answer(&phone, &got))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}\n{:?}", got.borrow());
    assert!(
        seen[0].contains("or type a recovery code, or o if your phone is offline): "),
        "{seen:?}"
    );
    e.wait_for_log("method=offline");
}

#[test]
fn a_wrong_code_is_counted_and_a_code_from_an_earlier_login_is_refused() {
    let (e, phone) = offline_setup("");
    // First login: keep the good code, type a wrong one, then the good one.
    let first = Rc::new(RefCell::new(String::new()));
    let keep = first.clone();
    let phone2 = phone.clone();
    let (code, seen) = e
        .pam(SVC, "alice")
        .answer(Answer::Reply(Box::new(move |prompt: &str| {
            let (_, good) = phone2.offline_code(&request_in(prompt));
            *keep.borrow_mut() = good.unwrap_or_default();
            let good = keep.borrow().replace(' ', "");
            let wrong: u32 = (good.parse::<u32>().unwrap_or(0) + 1) % 100_000_000;
            format!("{wrong:08}")
        })))
        .answer(Answer::Reply(Box::new({
            let first = first.clone();
            move |_: &str| first.borrow().clone()
        })))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    assert!(
        seen.contains(&"error:That code is not the one for this request.".to_owned()),
        "{seen:?}"
    );
    assert!(seen.contains(&format!("prompt:{CODE_PROMPT}")), "{seen:?}");
    let log = e.wait_for_log("outcome=success");
    assert!(log.contains("wrong offline code user=\"alice\""), "{log}");

    // Counted: a second wrong code leaves one failure behind...
    let (code, _) = e
        .pam(SVC, "alice")
        .answer("1234 5678")
        .answer(Answer::Fail)
        .run();
    assert_eq!(code, rc::CONV_ERR);
    assert_eq!(e.status("alice").consecutive_failures, 1);

    // ...and the first login's code does not open the next one.
    let replayed = first.borrow().clone();
    let (code, seen) = e
        .pam(SVC, "alice")
        .answer(replayed.as_str())
        .answer(Answer::Fail)
        .run();
    assert_eq!(code, rc::CONV_ERR, "{seen:?}");
    assert!(seen.contains(&"error:That code is not the one for this request.".to_owned()));
    assert_eq!(e.status("alice").consecutive_failures, 2);
    let log = e.helper_log();
    assert!(!log.contains(&replayed), "a code reached the log");
    assert!(
        !log.contains(&replayed.replace(' ', "")),
        "a code reached the log"
    );
}

#[test]
fn wrong_codes_lock_out_with_recovery_codes() {
    let (e, _phone) = offline_setup("[recovery]\nbackoff_after = 3\nlockout_after = 3\n");
    for _ in 0..3 {
        let (code, _) = e
            .pam(SVC, "alice")
            .answer("0000 0000")
            .answer(Answer::Fail)
            .run();
        assert_eq!(code, rc::CONV_ERR);
    }
    let status = e.status("alice");
    assert!(status.locked_out, "{status:?}");
    let (code, seen) = e.pam(SVC, "alice").answer("0000 0001").run();
    assert_eq!(code, rc::AUTH_ERR, "{seen:?}");
    assert!(seen.last().unwrap().contains("locked"), "{seen:?}");
}

#[test]
fn a_code_for_another_host_or_after_expiry_is_refused() {
    // The same phone, enrolled with a second computer.
    let (e, phone) = offline_setup("[helper]\nprompt_timeout_secs = 5\n");
    let mut relay = Relay::start();
    let mut other = TestEnv::new(&relay_config(&relay.url, ""));
    other.start_helper();
    other.service(SVC, "");
    phone.enroll(&other, "alice");
    relay.stop();
    let other_request = request_from_an_abandoned_login(&other);
    let (_, other_code) = phone.offline_code(&other_request);
    let other_code = other_code.expect("the phone answers the other host's request");

    // Typed at this host: refused.
    let (code, seen) = e
        .pam(SVC, "alice")
        .answer(other_code.as_str())
        .answer(Answer::Fail)
        .run();
    assert_eq!(code, rc::CONV_ERR);
    assert!(seen.contains(&"error:That code is not the one for this request.".to_owned()));

    // The right code, typed after the request expired (it lives as long
    // as the prompt may wait, 5 s here): a wrong code at 3 s, then the
    // right one at 5.5 s.
    let good = Rc::new(RefCell::new(String::new()));
    let (keep, phone2) = (good.clone(), phone.clone());
    let (code, seen) = e
        .pam(SVC, "alice")
        .answer(Answer::Reply(Box::new(move |p: &str| {
            let (_, code) = phone2.offline_code(&request_in(p));
            *keep.borrow_mut() = code.unwrap_or_default();
            std::thread::sleep(Duration::from_millis(3_000));
            let wrong = if keep.borrow().as_str() == "0000 0000" {
                "0000 0001"
            } else {
                "0000 0000"
            };
            wrong.to_owned()
        })))
        .answer(Answer::Reply(Box::new(move |_: &str| {
            std::thread::sleep(Duration::from_millis(2_500));
            good.borrow().clone()
        })))
        .run();
    assert_eq!(code, rc::AUTH_ERR, "{seen:?}");
    assert_eq!(
        seen.last().map(String::as_str),
        Some("error:This offline request has expired. Sign in again for a new one.")
    );
    e.wait_for_log("offline code typed after the request expired");
}

#[test]
fn offline_can_be_turned_off_per_service_and_old_devices_are_told_to_re_enroll() {
    let (e, phone) = offline_setup("[policy.services.pushmfa-test]\noffline = \"deny\"\n");
    let (code, seen) = e.pam(SVC, "alice").answer(Answer::Fail).run();
    assert_eq!(code, rc::CONV_ERR);
    // Wait mode (no remote host): the number, then the reason, then codes.
    assert!(
        seen[0].starts_with("info:Approve on your phone"),
        "{seen:?}"
    );
    assert_eq!(
        seen[1..],
        [
            "error:Your phone cannot be reached right now.",
            "prompt:Recovery code: "
        ]
    );
    // Typing o is answered, not ignored.
    let (code, seen) = e.pam(SVC, "alice").answer("o").answer(Answer::Fail).run();
    assert_eq!(code, rc::CONV_ERR);
    assert_eq!(
        seen[3],
        "error:That is not a recovery code (they look like XXXX-XXXX-XXXX-XXXX)."
    );
    // Other services still offer it.
    e.service("other-svc", "");
    let (code, seen) = e.pam("other-svc", "alice").answer(Answer::Fail).run();
    assert_eq!(code, rc::CONV_ERR);
    assert!(seen[2].ends_with(CODE_PROMPT), "{seen:?}");

    // A device enrolled before offline approval existed has no key.
    let path = e.state.join("users/alice.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for d in state["devices"].as_array_mut().unwrap() {
        d.as_object_mut().unwrap().remove("offline_key");
    }
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    assert!(
        e.devices_list("alice")
            .contains("no offline codes (re-enroll for them); protocol 2")
    );
    let (code, seen) = e.pam("other-svc", "alice").answer(Answer::Fail).run();
    assert_eq!(code, rc::CONV_ERR);
    assert_eq!(
        seen[1..],
        [
            "error:Your phone cannot be reached right now.",
            "error:Your devices were enrolled before offline approval existed: re-enroll one for offline approval (pushmfa enroll).",
            "prompt:Recovery code: "
        ]
    );
    let _ = phone;
}

#[test]
fn a_long_context_is_shortened_so_the_qr_code_still_fits_80_columns() {
    let (e, phone) = offline_setup("");
    let rhost = format!("{}.example.org", "h".repeat(230));
    let got = Rc::new(RefCell::new(Vec::new()));
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost(&rhost)
        .tty(&"t".repeat(200))
        .answer("")
        .answer(scan_and_answer(&phone, &got))
        .run();
    let got = got.borrow();
    assert_eq!(code, rc::SUCCESS, "{seen:?}\n{got:?}");
    let art: Vec<&str> = got[0].lines().filter(|l| l.starts_with('█')).collect();
    assert!(!art.is_empty() && art.iter().all(|l| l.chars().count() <= 80));
    // What the phone was shown: the host signed the first 32 bytes.
    assert!(
        got[2].contains(&format!("from {} (tty", &rhost[..32])),
        "{}",
        got[2]
    );
}

#[test]
fn the_authenticator_asks_before_it_shows_a_code_and_takes_a_wrapped_paste() {
    use std::io::Write;
    let (e, phone) = offline_setup("");
    let request = request_from_an_abandoned_login(&e);
    let run = |stdin: &str| {
        let mut child = Command::new(bin("pushmfa-authenticator"))
            .arg("--store")
            .arg(&phone.dir)
            .arg("offline")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    // Pasted across lines as a terminal wraps it, then "no": no code.
    let wrapped: String = request
        .as_bytes()
        .chunks(80)
        .map(|l| format!("{}\n", String::from_utf8_lossy(l)))
        .collect();
    let (ok, out) = run(&format!("{wrapped}\nn\n"));
    assert!(ok, "{out}");
    assert!(
        out.contains("Approve? Only if you started this sign-in yourself"),
        "{out}"
    );
    assert!(
        out.contains("Not approved: no code shown.") && !out.contains("Code: "),
        "{out}"
    );
    let (ok, out) = run(&format!("{wrapped}\ny\n"));
    assert!(ok && out.contains("Code: "), "{out}");
    // Garbage: a clear error, no code.
    let (ok, out) = run("PUSHMFA-OFFLINE:ABC!\n\n");
    assert!(!ok, "{out}");
    assert!(
        out.contains("the request has a character that is not base32 ('!')"),
        "{out}"
    );
    assert!(!out.contains("Code: "), "{out}");
}
