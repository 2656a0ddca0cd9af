//! Offline approval with the web app in Debian's Chromium: the relay is
//! stopped and the phone is in airplane mode; the QR code drawn at the real
//! PAM prompt is shown to the phone's (fake) camera, the app checks the
//! host's signature and shows the code, and the code typed at the prompt
//! logs in. Without a camera, the request is pasted.

use pushmfa_tests::push::{Relay, relay_config};
use pushmfa_tests::qr::{decode_terminal, terminal_to_y4m};
use pushmfa_tests::webapp::BrowserPhone;
use pushmfa_tests::{Answer, TestEnv, rc};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

const SVC: &str = "pushmfa-test";

fn env_for(url: &str) -> TestEnv {
    let mut e = TestEnv::new(&relay_config(url, "[push]\nhost_name = \"web-1\"\n"));
    e.start_helper();
    e.service(SVC, "");
    e
}

/// Saves the screen to docs/transcripts/phone/ when
/// PUSHMFA_UPDATE_TRANSCRIPTS is set.
fn screenshot(phone: &mut BrowserPhone, name: &str) -> Result<(), String> {
    if std::env::var_os("PUSHMFA_UPDATE_TRANSCRIPTS").is_none() {
        return Ok(());
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/transcripts/phone");
    let path = dir.join(format!("{name}.png"));
    phone
        .try_call(json!({"cmd": "screenshot", "path": path}))
        .map(drop)
}

/// What the phone made of the QR prompt, kept for the test to look at
/// (a panic inside the PAM conversation would abort the process).
#[derive(Default)]
struct Seen {
    /// Save the request's screen for the docs.
    screenshot: bool,
    prompt: String,
    request: Value,
    answer: Value,
    error: String,
}

/// Answers the QR prompt: the phone reads it (camera, or pasted text) and
/// the code it shows is typed.
fn phone_answers(
    phone: &Rc<RefCell<BrowserPhone>>,
    camera: Option<PathBuf>,
    seen: &Rc<RefCell<Seen>>,
) -> Answer {
    let (phone, seen) = (phone.clone(), seen.clone());
    Answer::Reply(Box::new(move |prompt: &str| {
        let mut s = seen.borrow_mut();
        s.prompt = prompt.to_owned();
        let mut p = phone.borrow_mut();
        let asked = match &camera {
            Some(file) => std::fs::write(file, terminal_to_y4m(prompt))
                .map_err(|e| e.to_string())
                .and_then(|()| p.try_call(json!({"cmd": "offline_request"}))),
            None => {
                let text = decode_terminal(prompt).unwrap_or_default();
                p.try_call(json!({"cmd": "offline_request", "paste": text}))
            }
        };
        let got = asked.and_then(|r| {
            s.request = r;
            if s.screenshot {
                screenshot(&mut p, "05-offline-request")?;
            }
            p.try_call(json!({"cmd": "offline_answer"}))
        });
        match got {
            Ok(a) => {
                s.answer = a;
                s.answer["code"].as_str().unwrap_or_default().to_owned()
            }
            Err(e) => {
                s.error = e;
                String::new()
            }
        }
    }))
}

#[test]
fn the_app_reads_the_qr_code_with_the_camera_in_airplane_mode_and_its_code_logs_in() {
    let mut relay = Relay::start();
    let e = env_for(&relay.url);
    let camera = e.dir.path().join("camera.y4m");
    let phone = Rc::new(RefCell::new(BrowserPhone::start(&[
        "--service-workers",
        "--camera",
        camera.to_str().unwrap(),
    ])));
    phone.borrow_mut().enroll(&e, &relay.url, "alice", "phone");
    phone.borrow_mut().call(json!({"cmd": "sw_ready"}));
    // No network anywhere: the relay is gone, the phone is in airplane mode
    // and the app starts again from the service worker's cache.
    relay.stop();
    phone
        .borrow_mut()
        .call(json!({"cmd": "offline", "on": true}));
    phone.borrow_mut().call(json!({"cmd": "reload"}));
    phone
        .borrow_mut()
        .call(json!({"cmd": "wait_status_text", "text": "No connection to the relay"}));

    let seen = Rc::new(RefCell::new(Seen {
        screenshot: true,
        ..Seen::default()
    }));
    let (code, transcript) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .tty("pts/4")
        // The push prompt comes first: Enter.
        .answer("")
        .answer(phone_answers(&phone, Some(camera), &seen))
        .run();
    let s = seen.borrow();
    assert_eq!(s.error, "", "{transcript:?}");
    assert_eq!(code, rc::SUCCESS, "{transcript:?}\n{:?}", s.answer);
    // The app showed what the host signed.
    assert_eq!(s.request["host"], "web-1", "{}", s.request);
    assert_eq!(s.request["user"], "alice");
    assert_eq!(s.request["service"], SVC);
    assert_eq!(s.request["from"], "203.0.113.7");
    assert_eq!(s.request["tty"], "pts/4");
    let code_shown = s.answer["code"].as_str().unwrap();
    assert!(
        code_shown.len() == 9 && code_shown.as_bytes()[4] == b' ',
        "{code_shown}"
    );
    let log = e.wait_for_log("outcome=success");
    assert!(log.contains("method=offline device=\"phone\""), "{log}");
    screenshot(&mut phone.borrow_mut(), "06-offline-code").unwrap();
    phone.borrow_mut().call(json!({"cmd": "offline_done"}));

    // The same code does not open the next login.
    let used = code_shown.to_owned();
    let (code, transcript) = e
        .pam(SVC, "alice")
        .answer("")
        .answer(used.as_str())
        .answer(Answer::Fail)
        .run();
    assert_eq!(code, rc::CONV_ERR, "{transcript:?}");
    assert!(transcript.contains(&"error:That code is not the one for this request.".to_owned()));
    assert!(!e.helper_log().contains(&used), "a code reached the log");
}

#[test]
fn without_a_camera_the_request_is_pasted_and_a_forged_one_is_refused() {
    let mut relay = Relay::start();
    let e = env_for(&relay.url);
    let phone = Rc::new(RefCell::new(BrowserPhone::start(&[])));
    phone.borrow_mut().enroll(&e, &relay.url, "alice", "phone");
    relay.stop();

    // A request the host did not sign: one letter of the signature changed.
    let forged = Rc::new(RefCell::new(Value::Null));
    let (p, f) = (phone.clone(), forged.clone());
    let (code, _) = e
        .pam(SVC, "alice")
        .answer(Answer::Reply(Box::new(move |prompt: &str| {
            let mut text = decode_terminal(prompt).unwrap_or_default();
            let last = text.pop().map_or('A', |c| if c == 'A' { 'Q' } else { 'A' });
            text.push(last);
            *f.borrow_mut() = p
                .borrow_mut()
                .try_call(json!({"cmd": "offline_request", "paste": text}))
                .unwrap_or_else(|e| json!({ "error": e }));
            String::new()
        })))
        .answer(Answer::Fail)
        .run();
    assert_eq!(code, rc::CONV_ERR);
    let refused = forged.borrow()["refused"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        refused.contains("NOT signed by the enrolled computer")
            || refused.contains("cut short or damaged"),
        "{}",
        forged.borrow()
    );

    let seen = Rc::new(RefCell::new(Seen::default()));
    let (code, transcript) = e
        .pam(SVC, "alice")
        .answer(phone_answers(&phone, None, &seen))
        .run();
    let s = seen.borrow();
    assert_eq!(code, rc::SUCCESS, "{transcript:?}\n{}", s.error);
    assert_eq!(s.request["from"], "this computer");
    e.wait_for_log("method=offline device=\"phone\"");
}

#[test]
fn with_no_service_worker_the_camera_still_reads_the_code_once_the_relay_is_gone() {
    // The app was opened while the relay was up; it fetched the QR reader
    // then. With no service worker to keep a copy, that is what lets the
    // camera work after the relay is gone.
    let mut relay = Relay::start();
    let e = env_for(&relay.url);
    let camera = e.dir.path().join("camera.y4m");
    let phone = Rc::new(RefCell::new(BrowserPhone::start(&[
        "--camera",
        camera.to_str().unwrap(),
    ])));
    phone.borrow_mut().enroll(&e, &relay.url, "alice", "phone");
    relay.stop();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let (code, transcript) = e
        .pam(SVC, "alice")
        .answer(phone_answers(&phone, Some(camera), &seen))
        .run();
    let s = seen.borrow();
    assert_eq!(s.error, "", "{transcript:?}");
    assert_eq!(code, rc::SUCCESS, "{transcript:?}\n{:?}", s.answer);
    e.wait_for_log("method=offline device=\"phone\"");
}
