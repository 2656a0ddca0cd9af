//! The phone web app in Debian's Chromium against the real relay, helper
//! and module: enroll from the link `pushmfa enroll` prints, then answer
//! real PAM logins on the page by typing the number from the prompt.

use pushmfa_tests::push::{Relay, number_in, relay_config};
use pushmfa_tests::webapp::BrowserPhone;
use pushmfa_tests::{Answer, TestEnv, rc};
use serde_json::json;
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

const SVC: &str = "pushmfa-test";

/// docs/transcripts/phone/, rewritten with PUSHMFA_UPDATE_TRANSCRIPTS=1.
fn screenshot_dir() -> Option<PathBuf> {
    std::env::var_os("PUSHMFA_UPDATE_TRANSCRIPTS").map(|_| transcripts())
}

fn transcripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/transcripts/phone")
}

/// One screen of the docs: its text (numbers masked) must match the
/// committed `NAME.txt`, so a changed screen fails until the screenshots
/// are taken again (PUSHMFA_UPDATE_TRANSCRIPTS=1 writes both).
fn screen(phone: &mut BrowserPhone, name: &str) -> Result<(), String> {
    let text = phone.try_call(json!({"cmd": "text"}))?;
    let mut masked = String::new();
    for c in text["text"].as_str().unwrap_or_default().chars() {
        match c {
            '0'..='9' if masked.ends_with('#') => {}
            '0'..='9' => masked.push('#'),
            c => masked.push(c),
        }
    }
    masked.push('\n');
    let txt = transcripts().join(format!("{name}.txt"));
    if let Some(dir) = screenshot_dir() {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        phone.try_call(json!({"cmd": "screenshot", "path": dir.join(format!("{name}.png"))}))?;
        return std::fs::write(&txt, masked).map_err(|e| e.to_string());
    }
    let committed = std::fs::read_to_string(&txt).unwrap_or_default();
    if committed == masked {
        Ok(())
    } else {
        Err(format!(
            "{} is out of date (the screen now reads:\n{masked}); regenerate with PUSHMFA_UPDATE_TRANSCRIPTS=1 cargo test -p pushmfa-tests --test webapp_login",
            txt.display()
        ))
    }
}

fn setup() -> (Relay, TestEnv) {
    let relay = Relay::start();
    let e = env_for(&relay.url);
    (relay, e)
}

/// A helper (host `web-1`) using the relay at `url`, with the PAM service.
fn env_for(url: &str) -> TestEnv {
    let mut e = TestEnv::new(&relay_config(url, "[push]\nhost_name = \"web-1\"\n"));
    e.start_helper();
    e.service(SVC, "");
    e
}

/// A login from 203.0.113.7 that the browser answers when the prompt shows
/// its number: `offset` is added to the number typed (a wrong one unless 0).
fn login(
    e: &TestEnv,
    phone: &Rc<RefCell<BrowserPhone>>,
    offset: u8,
    button: &'static str,
    shot: Option<&'static str>,
) -> (i32, serde_json::Value, serde_json::Value) {
    let seen = Rc::new(RefCell::new((json!(null), json!(null))));
    let (p, s) = (phone.clone(), seen.clone());
    let (code, transcript) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .tty("pts/3")
        .answer(Answer::Reply(Box::new(move |prompt: &str| {
            // No panic here: this runs inside libpam's conversation callback;
            // a failed step is reported after the login.
            let n = (number_in(prompt) + offset) % 100;
            let mut phone = p.borrow_mut();
            let mut steps = || -> Result<_, String> {
                let card = phone.try_call(json!({"cmd": "wait_request"}))?;
                if button == "Approve" {
                    phone.try_call(json!({"cmd": "type", "digits": format!("{n:02}")}))?;
                }
                if let Some(name) = shot {
                    screen(&mut phone, name)?;
                }
                let done = phone.try_call(json!({"cmd": "press", "button": button}))?;
                Ok((card, done))
            };
            *s.borrow_mut() = steps().unwrap_or_else(|e| (json!({ "error": e }), json!(null)));
            String::new()
        })))
        .run();
    assert!(
        transcript[0].starts_with("prompt:Approve on your phone with number "),
        "{transcript:?}"
    );
    let (card, done) = seen.borrow().clone();
    assert_eq!(card["error"], json!(null), "the browser failed: {card}");
    (code, card, done)
}

#[test]
fn enroll_from_the_link_then_approve_deny_and_report_in_the_browser() {
    let (relay, e) = setup();
    let phone = Rc::new(RefCell::new(BrowserPhone::start(&[])));

    // Enroll: the link opens the app; the secret leaves the address bar.
    let (out, added) = phone
        .borrow_mut()
        .enroll(&e, &relay.url, "alice", "Alice's phone");
    assert!(
        added["message"]
            .as_str()
            .unwrap()
            .starts_with("Added alice on web-1"),
        "{added}"
    );
    let url = added["url"].as_str().unwrap();
    assert!(
        !url.contains('#') && !url.contains("secret"),
        "the enrollment fragment is still in the address bar: {url}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.len() == 19 && l.matches('-').count() == 3)
            .count(),
        10,
        "first enrollment shows recovery codes:\n{out}"
    );
    let enrolled = e.wait_for_log("device enrolled user=\"alice\" device=\"Alice's phone\"");
    assert!(enrolled.contains("protocol=2"), "{enrolled}");
    screen(&mut phone.borrow_mut(), "01-enrolled").unwrap_or_else(|e| panic!("{e}"));

    // The key is non-extractable and survives a reload.
    let keys = phone.borrow_mut().call(json!({"cmd": "keys"}));
    let k = &keys["accounts"][0];
    assert_eq!(
        (
            k["type"].as_str(),
            k["extractable"].as_bool(),
            k["exported"].as_str(),
            k["sigLen"].as_u64()
        ),
        (
            Some("private"),
            Some(false),
            Some("InvalidAccessError"),
            Some(64)
        ),
        "{keys}"
    );
    assert_eq!(
        (
            k["protocol"].as_u64(),
            k["sealExtractable"].as_bool(),
            k["sealExported"].as_str()
        ),
        (Some(2), Some(false), Some("InvalidAccessError")),
        "{keys}"
    );
    phone.borrow_mut().call(json!({"cmd": "reload"}));
    assert_eq!(
        phone.borrow_mut().call(json!({"cmd": "keys"}))["accounts"],
        keys["accounts"]
    );

    // Approve with the number from the prompt: the login succeeds.
    let (code, card, done) = login(&e, &phone, 0, "Approve", Some("02-request"));
    assert_eq!(code, rc::SUCCESS, "{card} {done}");
    assert_eq!(card["host"], "web-1");
    assert_eq!(card["user"], "alice");
    assert_eq!(card["service"], SVC);
    assert_eq!(card["from"], "203.0.113.7");
    assert_eq!(card["tty"], "pts/3");
    assert_eq!(done["status"], "approved", "{done}");
    assert!(
        e.wait_for_log("outcome=success")
            .contains("method=push device=\"Alice's phone\"")
    );
    screen(&mut phone.borrow_mut(), "03-approved").unwrap_or_else(|e| panic!("{e}"));

    // A wrong number is a denial on the host, whatever the phone signed.
    let (code, _, done) = login(&e, &phone, 1, "Approve", None);
    assert_eq!(code, rc::AUTH_ERR, "{done}");
    e.wait_for_log("outcome=denied (wrong number on device=");

    // Deny.
    let (code, _, done) = login(&e, &phone, 0, "Deny", None);
    assert_eq!(
        (code, done["status"].as_str()),
        (rc::AUTH_ERR, Some("denied"))
    );
    e.wait_for_log("outcome=denied (denied on device=\"Alice's phone\")");

    // "Not me": denied, reported, and further pushes are paused.
    let (code, _, done) = login(&e, &phone, 0, "Not me", Some("04-not-me"));
    assert_eq!(
        (code, done["status"].as_str()),
        (rc::AUTH_ERR, Some("reported"))
    );
    e.wait_for_log("FRAUD REPORTED user=\"alice\"");
    // ... and the next login pushes nothing: it goes straight to the code.
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(Answer::Fail)
        .run();
    assert_ne!(code, rc::SUCCESS);
    assert!(
        seen.iter()
            .any(|l| l.contains("paused after a \"not me\" report")),
        "{seen:?}"
    );

    // No script error and no Content-Security-Policy violation on the way.
    let problems = phone.borrow_mut().call(json!({"cmd": "problems"}));
    assert_eq!(problems["problems"], json!([]), "{problems}");
}

#[test]
fn a_wrong_or_used_link_says_what_to_do_and_adds_nothing() {
    let (relay, e) = setup();
    let mut phone = BrowserPhone::start(&["--width", "320"]);
    let (_, added) = phone.enroll(&e, &relay.url, "alice", "phone");
    assert!(
        added["message"].as_str().unwrap().starts_with("Added"),
        "{added}"
    );
    // A 320 px screen: nothing wider than the screen, touch targets >= 44 px.
    let layout = phone.call(json!({"cmd": "layout"}));
    assert!(
        layout["scrollWidth"].as_u64() <= layout["clientWidth"].as_u64()
            && layout["clientWidth"].as_u64() == Some(320),
        "{layout}"
    );
    assert!(
        layout["smallestTarget"].as_f64().unwrap() >= 44.0,
        "{layout}"
    );
    // The same link again: the relay has closed that enrollment.
    phone.call(json!({"cmd": "open", "url": added["link"]}));
    let failed = phone.call(json!({"cmd": "enroll_fails", "name": "again"}));
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("expired or was already used: run pushmfa enroll again"),
        "{failed}"
    );
    // A link with fields missing says which.
    let bogus = format!("{}/app/#enroll?v=1&relay=x", relay.url);
    phone.call(json!({"cmd": "open", "url": bogus}));
    phone.call(json!({"cmd": "wait_text", "text": "the enrollment link has no id"}));
    let keys = phone.call(json!({"cmd": "keys"}));
    assert_eq!(keys["accounts"].as_array().map(Vec::len), Some(1), "{keys}");
}

#[test]
fn a_login_request_wakes_the_phone_by_web_push() {
    let mut browser = BrowserPhone::start(&["--service-workers"]);
    let push = browser.call(json!({"cmd": "push_service"}));
    let origin = push["origin"].as_str().unwrap().to_owned();
    let relay = Relay::start_with(&["--web-push-allow", &origin]);
    let mut e = TestEnv::new(&relay_config(&relay.url, "[push]\nhost_name = \"web-1\"\n"));
    e.start_helper();
    e.service(SVC, "");
    browser.enroll(&e, &relay.url, "alice", "Alice's phone");
    let on = browser.call(json!({"cmd": "enable_notifications"}));
    assert!(
        on["message"]
            .as_str()
            .unwrap()
            .starts_with("Notifications are on"),
        "{on}"
    );
    let phone = Rc::new(RefCell::new(browser));
    let seen = Rc::new(RefCell::new(json!(null)));
    let (p, s) = (phone.clone(), seen.clone());
    let (code, transcript) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(Answer::Reply(Box::new(move |prompt: &str| {
            // No panic here: this runs inside libpam's conversation callback.
            let mut phone = p.borrow_mut();
            let mut steps = || -> Result<serde_json::Value, String> {
                // The push arrives while the prompt shows; its tap opens the card.
                let pushes = phone.try_call(json!({"cmd": "pushes", "count": 1}))?;
                let Some(id) = pushes["notifications"][0]["id"].as_str().map(str::to_owned) else {
                    return Err(format!("no notification: {pushes}"));
                };
                phone.try_call(json!({"cmd": "wait_request"}))?;
                let tapped = phone.try_call(json!({"cmd": "tap_notification", "id": id}))?;
                let n = format!("{:02}", number_in(prompt));
                phone.try_call(json!({"cmd": "type", "digits": n}))?;
                phone.try_call(json!({"cmd": "press", "button": "Approve"}))?;
                Ok(json!({"pushes": pushes, "tapped": tapped}))
            };
            *s.borrow_mut() = steps().unwrap_or_else(|e| json!({ "error": e }));
            String::new()
        })))
        .run();
    assert_eq!(code, rc::SUCCESS, "{transcript:?} {}", seen.borrow());
    let seen = seen.borrow();
    assert_eq!(seen["error"], json!(null), "{seen}");
    let got = &seen["pushes"]["received"][0];
    assert_eq!(got["error"], json!(null), "{seen}");
    assert_eq!(got["urgency"], "high");
    let ttl = got["ttl"].as_u64().unwrap();
    assert!(
        (1..=60).contains(&ttl),
        "TTL {ttl} is the challenge's remaining life"
    );
    assert_eq!(got["vapid"]["aud"], origin.as_str());
    let hint: serde_json::Value = serde_json::from_str(got["payload"].as_str().unwrap()).unwrap();
    assert_eq!(hint["v"], 1);
    let shown = &seen["pushes"]["notifications"][0];
    assert_eq!(shown["title"], "Sign-in request");
    // The push carried the request sealed to the phone: the notification
    // says what it is, and the push service saw only ciphertext.
    assert!(
        hint["sealed"].as_str().is_some_and(|s| s.len() > 1400),
        "{hint}"
    );
    assert_eq!(
        shown["body"],
        "alice → pushmfa-test on web-1 from 203.0.113.7. Open to review and approve."
    );
    assert_eq!(shown["id"], hint["id"]);
    assert_eq!(seen["tapped"]["how"], "shown");
    // What the push service saw: ids and a sealed box, no user, host,
    // service or address in any encoding.
    let payload = got["payload"].as_str().unwrap();
    for needle in ["alice", "web-1", SVC, "203.0.113.7"] {
        assert_eq!(
            pushmfa_tests::recorder::reveals(payload.as_bytes(), needle),
            None,
            "{payload}"
        );
    }
}

#[test]
fn the_app_opens_with_no_network_and_reconnects() {
    let (relay, e) = setup();
    let mut phone = BrowserPhone::start(&["--service-workers"]);
    phone.enroll(&e, &relay.url, "alice", "phone");
    phone.call(json!({"cmd": "sw_ready"}));
    // Airplane mode: the shell comes from the service worker's cache, the
    // account and its key from IndexedDB, and the app says it is offline.
    phone.call(json!({"cmd": "offline", "on": true}));
    phone.call(json!({"cmd": "reload"}));
    phone.call(json!({"cmd": "wait_status_text", "text": "No connection to the relay"}));
    let text = phone.call(json!({"cmd": "text"}));
    assert!(
        text["text"].as_str().unwrap().contains("alice on web-1"),
        "{text}"
    );
    let keys = phone.call(json!({"cmd": "keys"}));
    assert_eq!(keys["accounts"][0]["extractable"], false, "{keys}");
    // Back online: it polls again on its own.
    phone.call(json!({"cmd": "offline", "on": false}));
    phone.call(json!({"cmd": "wait_status_text", "text": "Waiting for sign-in requests", "timeout": 15000}));
    let problems = phone.call(json!({"cmd": "problems"}));
    assert!(
        problems["problems"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.as_str().unwrap().contains("ERR_INTERNET_DISCONNECTED")),
        "{problems}"
    );
}

#[test]
fn two_accounts_and_an_expired_request() {
    let relay = Relay::start();
    let mut web = TestEnv::new(&relay_config(
        &relay.url,
        "[push]\nhost_name = \"web-1\"\nttl_secs = 5\n",
    ));
    web.start_helper();
    web.service(SVC, "");
    let mut db = TestEnv::new(&relay_config(&relay.url, "[push]\nhost_name = \"db-1\"\n"));
    db.start_helper();
    db.service(SVC, "");
    let phone = Rc::new(RefCell::new(BrowserPhone::start(&[])));
    phone
        .borrow_mut()
        .enroll(&web, &relay.url, "alice", "phone");
    let (db_out, _) = phone.borrow_mut().enroll(&db, &relay.url, "alice", "phone");
    let db_code = db_out
        .lines()
        .find(|l| l.len() == 19 && l.matches('-').count() == 3)
        .unwrap_or_else(|| panic!("no recovery code:\n{db_out}"))
        .to_owned();
    let text = phone.borrow_mut().call(json!({"cmd": "text"}));
    let t = text["text"].as_str().unwrap();
    assert!(
        t.contains("alice on web-1") && t.contains("alice on db-1"),
        "{t}"
    );

    // The second host's request is approved with its own key.
    let (code, card, _) = login(&db, &phone, 0, "Approve", None);
    assert_eq!((code, card["host"].as_str()), (rc::SUCCESS, Some("db-1")));

    // The first host's request runs out while the phone looks at it.
    let p = phone.clone();
    let expired = Rc::new(RefCell::new(json!(null)));
    let x = expired.clone();
    let (code, _) = web
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(Answer::Reply(Box::new(move |_prompt: &str| {
            let mut phone = p.borrow_mut();
            let r = phone
                .try_call(json!({"cmd": "wait_request"}))
                .and_then(|c| {
                    let id = c["id"].clone();
                    phone.try_call(json!({"cmd": "wait_status", "id": id, "status": "expired"}))
                });
            *x.borrow_mut() = r.unwrap_or_else(|e| json!({ "error": e }));
            String::new()
        })))
        .answer(Answer::Fail)
        .run();
    assert_ne!(code, rc::SUCCESS);
    let expired_message = expired.borrow()["message"].clone();
    assert_eq!(
        expired_message,
        "This request expired.",
        "{}",
        expired.borrow()
    );

    // A recovery code typed at the prompt instead: the host withdraws the
    // request, and the phone says so.
    let p = phone.clone();
    let shown = Rc::new(RefCell::new(json!(null)));
    let sh = shown.clone();
    let (code, seen) = db
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(Answer::Reply(Box::new(move |_prompt: &str| {
            let r = p.borrow_mut().try_call(json!({"cmd": "wait_request"}));
            *sh.borrow_mut() = r.unwrap_or_else(|e| json!({ "error": e }));
            db_code.clone()
        })))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    let id = shown.borrow()["id"].clone();
    let gone = phone
        .borrow_mut()
        .call(json!({"cmd": "wait_status", "id": id, "status": "gone"}));
    assert_eq!(gone["message"], "Answered on another device, or withdrawn.");

    // Rename one account, remove the other: its key is gone from the phone.
    let mut phone = phone.borrow_mut();
    phone.call(json!({"cmd": "rename", "account": "alice on db-1", "label": "Database"}));
    phone.call(json!({"cmd": "remove", "account": "alice on web-1"}));
    let text = phone.call(json!({"cmd": "text"}));
    let t = text["text"].as_str().unwrap();
    assert!(t.lines().any(|l| l == "Database"), "{t}");
    assert!(!t.lines().any(|l| l == "alice on web-1"), "{t}");
    let keys = phone.call(json!({"cmd": "keys"}));
    assert_eq!(keys["accounts"].as_array().map(Vec::len), Some(1), "{keys}");
}

#[test]
fn the_app_from_an_origin_of_the_admins_own_uses_the_relay_by_cors() {
    let mut browser = BrowserPhone::start(&[]);
    // The app's own server (its policy lets the page reach the relay), and
    // a relay that serves no app and lets that origin use its API.
    let app = browser.call(json!({"cmd": "static_app"}));
    let origin = app["origin"].as_str().unwrap().to_owned();
    let relay = Relay::start_with(&["--app-origin", &origin]);
    browser.call(json!({"cmd": "static_app_relay", "relay": relay.url}));
    let mut e = TestEnv::new(&relay_config(
        &relay.url,
        &format!("app_url = \"{origin}/\"\n[push]\nhost_name = \"web-1\"\n"),
    ));
    e.start_helper();
    e.service(SVC, "");
    // The relay serves no app now.
    let mut s = std::net::TcpStream::connect(relay.url.trim_start_matches("http://")).unwrap();
    std::io::Write::write_all(
        &mut s,
        b"GET /app/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let (_, added) = browser.enroll_at(&e, &format!("{origin}/"), "alice", "phone");
    assert!(
        added["message"]
            .as_str()
            .unwrap()
            .starts_with("Added alice on web-1"),
        "{added}"
    );
    let phone = Rc::new(RefCell::new(browser));
    let (code, card, done) = login(&e, &phone, 0, "Approve", None);
    assert_eq!(code, rc::SUCCESS, "{card} {done}");
    let problems = phone.borrow_mut().call(json!({"cmd": "problems"}));
    assert_eq!(problems["problems"], json!([]), "{problems}");
}

/// The app's own unit tests (its encodings against the protocol's test
/// vectors), in Node, as part of the workspace's tests.
/// Posts an answer on the browser's channel with its stolen relay token,
/// as someone who copied the phone's storage would: garbage the host must
/// refuse. Returns the relay's status.
fn answer_as_a_thief(url: &str, channel: &str, token: &str, id: &str) -> Result<u16, String> {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(format!(
                "{url}/v1/channels/{channel}/challenges/{id}/response"
            ))
            .bearer_auth(token)
            .json(&json!({"response": b64(b"not an approval"), "signature": b64(&[0; 64])}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok(resp.status().as_u16())
    })
}

#[test]
fn a_refused_answer_is_shown_on_the_card_and_the_phone_can_still_approve() {
    let (relay, e) = setup();
    let phone = Rc::new(RefCell::new(BrowserPhone::start(&[])));
    phone.borrow_mut().enroll(&e, &relay.url, "alice", "phone");
    let keys = phone.borrow_mut().call(json!({"cmd": "keys"}));
    let account = keys["accounts"][0].clone();
    let (channel, token) = (
        account["channel"].as_str().unwrap_or_default().to_owned(),
        account["deviceToken"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    assert!(!channel.is_empty() && !token.is_empty(), "{keys}");
    let (p, url) = (phone.clone(), relay.url.clone());
    let seen = Rc::new(RefCell::new(json!(null)));
    let s = seen.clone();
    let (code, transcript) =
        e.pam(SVC, "alice")
            .rhost("203.0.113.7")
            .answer(Answer::Reply(Box::new(move |prompt: &str| {
                let n = number_in(prompt);
                let mut phone = p.borrow_mut();
                let mut steps = || -> Result<_, String> {
                    let card = phone.try_call(json!({"cmd": "wait_request"}))?;
                    let id = card["id"].as_str().unwrap_or_default().to_owned();
                    let posted = answer_as_a_thief(&url, &channel, &token, &id)?;
                    let refused = phone.try_call(
                        json!({"cmd": "wait_alert", "id": id, "text": "refused the last answer"}),
                    )?;
                    phone.try_call(json!({"cmd": "type", "digits": format!("{n:02}")}))?;
                    screen(&mut phone, "refused")?;
                    let done = phone.try_call(json!({"cmd": "press", "button": "Approve"}))?;
                    Ok(json!({"posted": posted, "refused": refused, "done": done}))
                };
                let result = steps();
                *s.borrow_mut() = result.unwrap_or_else(|e| {
                let screen = phone.try_call(json!({"cmd": "text"})).unwrap_or_default();
                let problems = phone.try_call(json!({"cmd": "problems"})).unwrap_or_default();
                json!({ "error": e, "screen": screen["text"], "problems": problems["problems"] })
            });
                String::new()
            })))
            .run();
    let seen = seen.borrow().clone();
    assert_eq!(
        seen["error"],
        json!(null),
        "the browser failed: {seen}\nhelper log:\n{}",
        e.helper_log()
    );
    assert_eq!(seen["posted"], 204, "{seen}");
    assert_eq!(
        seen["refused"]["message"],
        "The computer refused the last answer (malformed answer). Answer again if this is you.",
        "{seen}"
    );
    assert_eq!(seen["refused"]["status"], "open", "{seen}");
    assert_eq!(code, rc::SUCCESS, "{transcript:?} {seen}");
    assert_eq!(seen["done"]["status"], "approved", "{seen}");
    e.wait_for_log("push answer REJECTED user=\"alice\"");
    e.wait_for_log("outcome=success (method=push");
}

#[test]
fn the_app_passes_its_unit_tests_in_node() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../webapp");
    let out = std::process::Command::new("node")
        .args(["--test", "tests/protocol.test.mjs", "tests/sealed.test.mjs"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("node (apt-get install nodejs): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("# fail 0") && !text.contains("# pass 0"),
        "{text}"
    );
}

#[test]
fn chromium_runs_the_apps_hpke_to_the_rfc_9180_vectors_and_the_sealed_vector() {
    let testdata = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../protocol/testdata");
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(testdata.join(name)).unwrap()).unwrap()
    };
    let (rfc, vectors) = (read("hpke-rfc9180-a3.json"), read("vectors.json"));
    let relay = Relay::start();
    let mut browser = BrowserPhone::start(&[]);
    browser.call(json!({"cmd": "open", "url": format!("{}/app/", relay.url)}));
    let got = browser.call(json!({"cmd": "hpkeVectors", "rfc": rfc, "vectors": vectors}));
    assert_eq!(got["enc"], rfc["enc"], "{got}");
    let encryptions = rfc["encryptions"].as_array().unwrap();
    assert_eq!(
        got["rfc"].as_array().map(Vec::len),
        Some(encryptions.len()),
        "{got}"
    );
    for (g, e) in got["rfc"].as_array().unwrap().iter().zip(encryptions) {
        assert_eq!(g["ct"], e["ct"], "{got}");
        assert_eq!(g["pt"], e["pt"], "{got}");
    }
    assert_eq!(got["opened"], vectors["challenge_encoded"], "{got}");
    assert_eq!(got["resealed"], vectors["sealed_to_device"], "{got}");
    assert_eq!(got["refused"], "sealed message does not open", "{got}");
}

#[test]
fn the_relay_learns_no_user_host_service_or_address_from_the_web_app() {
    // Everything the app, the helper and the relay exchange passes a
    // recording proxy: the app itself is served through it too.
    let relay = Relay::start();
    let proxy = pushmfa_tests::recorder::Recorder::start(&relay.url);
    let e = env_for(&proxy.url);
    let phone = Rc::new(RefCell::new(BrowserPhone::start(&[])));
    phone.borrow_mut().enroll(&e, &proxy.url, "alice", "Phone");
    let (code, card, _) = login(&e, &phone, 0, "Approve", None);
    assert_eq!(code, rc::SUCCESS, "{card}");
    // The phone showed it all after opening the sealed request ...
    assert_eq!(
        (&card["user"], &card["host"], &card["from"]),
        (&json!("alice"), &json!("web-1"), &json!("203.0.113.7"))
    );
    // ... and the relay saw none of it.
    let traffic = proxy.seen();
    assert!(String::from_utf8_lossy(&traffic).contains("\"sealed\""));
    for needle in ["alice", "web-1", SVC, "203.0.113.7", "pts/3"] {
        assert_eq!(
            pushmfa_tests::recorder::reveals(&traffic, needle),
            None,
            "the relay saw {needle:?}"
        );
    }
}

/// A login (prompt mode) whose number the browser approves, that must not
/// pass: returns what the Approve tap came to, or, with `refused`, the
/// card's alert once the host refused the answer. Later prompts (the
/// recovery code) get nothing.
fn approve_without_success(
    e: &TestEnv,
    phone: &Rc<RefCell<BrowserPhone>>,
    refused: bool,
) -> serde_json::Value {
    let p = phone.clone();
    let result = Rc::new(RefCell::new(json!(null)));
    let seen = result.clone();
    let asked = Rc::new(RefCell::new(0));
    let (code, transcript) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(Answer::Reply(Box::new(move |prompt: &str| {
            *asked.borrow_mut() += 1;
            if *asked.borrow() > 1 {
                return String::new();
            }
            let n = number_in(prompt);
            let mut phone = p.borrow_mut();
            let mut steps = || -> Result<_, String> {
                let card = phone.try_call(json!({"cmd": "wait_request"}))?;
                let id = card["id"].as_str().unwrap_or_default().to_owned();
                phone.try_call(json!({"cmd": "type", "digits": format!("{n:02}")}))?;
                let pressed = phone.try_call(json!({"cmd": "press", "button": "Approve"}))?;
                if !refused {
                    return Ok(pressed);
                }
                phone.try_call(
                    json!({"cmd": "wait_alert", "id": id, "text": "refused the last answer"}),
                )
            };
            *seen.borrow_mut() = steps().unwrap_or_else(|e| json!({ "error": e }));
            String::new()
        })))
        .run();
    assert_ne!(code, rc::SUCCESS, "{transcript:?}");
    result.take()
}

#[test]
fn approvals_verified_by_the_phones_screen_lock_are_checked_on_the_host() {
    // WebAuthn needs a domain, not an address: the app is opened at localhost.
    let relay = Relay::start();
    let url = relay.url.replace("127.0.0.1", "localhost");
    let mut e = TestEnv::new(&relay_config(
        &url,
        "[push]\nhost_name = \"web-1\"\nttl_secs = 5\nrequire_user_verification = true\n",
    ));
    e.start_helper();
    e.service(SVC, "");
    let phone = Rc::new(RefCell::new(BrowserPhone::start(&[])));
    phone
        .borrow_mut()
        .call(json!({"cmd": "authenticator", "verified": true}));
    phone.borrow_mut().enroll(&e, &url, "alice", "Phone");
    let made = phone
        .borrow_mut()
        .call(json!({"cmd": "authenticator", "verified": true}));
    assert_eq!(made["credentials"], 1, "no passkey was made: {made}");
    let listed = e.devices_list("alice");
    assert!(listed.contains("user verification by passkey"), "{listed}");

    // Verified: the host checks the assertion and lets the login in.
    let (code, card, done) = login(&e, &phone, 0, "Approve", None);
    assert_eq!(code, rc::SUCCESS, "{card} {done}");
    e.wait_for_log("outcome=success (method=push device=\"Phone\")");

    // Not verified (no screen lock confirmed): nothing is sent, and the
    // login does not pass without a factor.
    phone
        .borrow_mut()
        .call(json!({"cmd": "authenticator", "verified": false}));
    let pressed = approve_without_success(&e, &phone, false);
    assert_eq!(pressed["status"], "open", "{pressed}");
    assert!(
        pressed["message"]
            .as_str()
            .is_some_and(|m| m.contains("screen lock or fingerprint was not confirmed")),
        "{pressed}"
    );

    // An app that lies about the assertion: over other bytes, or without
    // the user verified. The host refuses each, says why on the card, and
    // the login does not pass.
    for (how, why) in [
        (
            "other-bytes",
            "the assertion is over other bytes than this approval",
        ),
        ("unverified", "did not verify the user"),
    ] {
        phone.borrow_mut().call(json!({"cmd": "reload"}));
        phone
            .borrow_mut()
            .call(json!({"cmd": "authenticator", "verified": how != "unverified"}));
        phone
            .borrow_mut()
            .call(json!({"cmd": "forge_assertions", "how": how}));
        let refused = approve_without_success(&e, &phone, true);
        assert!(
            refused["message"].as_str().is_some_and(|m| m.contains(why)),
            "{how}: {refused}"
        );
        e.wait_for_log(why);
    }

    // A command-line authenticator cannot verify its user: it is not asked,
    // and its user is told why.
    let cli = pushmfa_tests::push::Phone::new(&e, "cli");
    cli.enroll(&e, "bob");
    assert!(
        e.devices_list("bob")
            .contains("protocol 2 (sealed requests)")
    );
    let (code, transcript) = e
        .pam(SVC, "bob")
        .rhost("203.0.113.7")
        .answer(Answer::Fail)
        .run();
    assert_ne!(code, rc::SUCCESS);
    assert!(
        transcript
            .iter()
            .any(|t| t.contains("must be approved with your phone's screen lock")),
        "{transcript:?}"
    );
    assert!(cli.pending().is_empty(), "the CLI authenticator was asked");
    e.wait_for_log("push skips device(s) without a passkey of user=\"bob\"");
}

#[test]
fn the_app_shows_nothing_of_a_tampered_misdirected_or_rebound_request() {
    let (relay, e) = setup();
    let phone = Rc::new(RefCell::new(BrowserPhone::start(&[])));
    phone.borrow_mut().enroll(&e, &relay.url, "alice", "Phone");
    let context = pushmfa_protocol::signed::Context {
        user: "alice".into(),
        service: SVC.into(),
        rhost: "203.0.113.7".into(),
        tty: "pts/3".into(),
    };
    pushmfa_tests::forge::post_badly_sealed(&e, &relay.url, "web-x", &context);
    let mut phone = phone.borrow_mut();
    let card = phone.call(json!({"cmd": "wait_request"}));
    assert_eq!(card["host"], "web-x-5", "{card}");
    // The four bad ones were posted first, so the list that brought the
    // good one held them too, and the app checks a list in order: they
    // were refused before this card was drawn.
    let text = phone.call(json!({"cmd": "text"}));
    let t = text["text"].as_str().unwrap_or_default();
    for bad in 1..=4 {
        assert!(!t.contains(&format!("web-x-{bad}")), "{t}");
    }
    assert_eq!(
        t.matches("web-x-").count(),
        t.matches("web-x-5").count(),
        "{t}"
    );
    let problems = phone.call(json!({"cmd": "problems"}));
    assert_eq!(problems["problems"], json!([]), "{problems}");
}
