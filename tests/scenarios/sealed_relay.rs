//! Protocol 2 against the real relay, helper and PAM: a proxy records every
//! byte the relay receives and sends, and the user name, host name,
//! service and client address appear in none of it, in any encoding. It
//! does with a protocol 1 device, which shows that the search works. A
//! request that is tampered with, sealed to another key, or bound to
//! another request is refused by the device and shown nowhere. Protocol 1
//! devices are refused where `push.min_protocol = 2`.

use pushmfa_protocol::signed::{Context, Decision};
use pushmfa_tests::push::{EnrollRun, Phone, Relay, number_in, relay_config};
use pushmfa_tests::recorder::{Recorder, reveals};
use pushmfa_tests::{Answer, TestEnv, rc};

const SVC: &str = "sealedsvc";
const HOST: &str = "web-secret-7";
const RHOST: &str = "198.51.100.23";
const USER: &str = "alice";

fn approve_at_prompt(phone: &Phone) -> Answer {
    let dir = phone.store_path().to_owned();
    Answer::Reply(Box::new(move |prompt: &str| {
        Phone { dir }.decide(Decision::Approve, Some(number_in(prompt)));
        String::new()
    }))
}

fn env(relay_url: &str, extra: &str) -> TestEnv {
    let mut e = TestEnv::new(&relay_config(
        relay_url,
        &format!("[push]\nhost_name = \"{HOST}\"\n{extra}"),
    ));
    e.start_helper();
    e.service(SVC, "");
    e
}

/// Enrolls a phone through the recording proxy, logs in once with it, and
/// returns what the relay saw.
fn recorded_login(protocol: u8) -> Vec<u8> {
    let relay = Relay::start();
    let proxy = Recorder::start(&relay.url);
    let e = env(&proxy.url, "");
    let phone = Phone::new(&e, "phone");
    match protocol {
        1 => phone.enroll_v1(&e, USER),
        _ => phone.enroll(&e, USER),
    };
    let (code, seen) = e
        .pam(SVC, USER)
        .rhost(RHOST)
        .answer(approve_at_prompt(&phone))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    e.wait_for_log("outcome=success (method=push");
    proxy.seen()
}

#[test]
fn the_relay_learns_no_user_host_service_or_address_from_protocol_2() {
    let traffic = recorded_login(2);
    assert!(
        String::from_utf8_lossy(&traffic).contains("\"sealed\""),
        "the requests did not travel sealed"
    );
    for needle in [USER, HOST, SVC, RHOST] {
        assert_eq!(
            reveals(&traffic, needle),
            None,
            "the relay saw {needle:?} ({} bytes recorded)",
            traffic.len()
        );
    }
}

#[test]
fn the_same_search_finds_them_all_with_protocol_1() {
    let traffic = recorded_login(1);
    for needle in [USER, HOST, SVC, RHOST] {
        assert!(
            reveals(&traffic, needle).is_some(),
            "the search missed {needle:?} in protocol 1 traffic"
        );
    }
}

#[test]
fn a_tampered_misdirected_or_rebound_request_is_refused_and_shown_nowhere() {
    let relay = Relay::start();
    let e = env(&relay.url, "");
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, USER);
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|err| panic!("{err}"));
    let context = Context {
        user: USER.into(),
        service: SVC.into(),
        rhost: RHOST.into(),
        tty: "ssh".into(),
    };
    pushmfa_tests::forge::post_badly_sealed(&e, &relay.url, HOST, &context);
    let store = pushmfa_authenticator::Store::open(phone.store_path())
        .unwrap_or_else(|err| panic!("{err}"));
    let (shown, refused) = rt
        .block_on(pushmfa_authenticator::pending(
            &store,
            std::time::Duration::ZERO,
        ))
        .unwrap_or_else(|err| panic!("{err}"));
    let shown: Vec<String> = shown.iter().map(|r| r.describe()).collect();
    assert_eq!(shown.len(), 1, "{shown:?} {refused:?}");
    assert!(shown[0].contains(&format!("{HOST}-5")), "{shown:?}");
    assert_eq!(refused.len(), 4, "{refused:?}");
    for r in &refused {
        assert!(r.contains("sealed request refused"), "{r}");
        assert!(!r.contains(HOST) && !r.contains(USER), "{r}");
    }
}

#[test]
fn protocol_1_devices_are_refused_where_policy_requires_2() {
    let relay = Relay::start();
    let mut e = env(&relay.url, "");
    let old = Phone::new(&e, "old");
    old.enroll_v1(&e, USER);
    let new = Phone::new(&e, "new");
    new.enroll(&e, USER);
    let listed = e.devices_list(USER);
    let line = |name: &str| {
        listed
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line("phone-old").ends_with("protocol 1 (the relay can read its requests)"),
        "{listed}"
    );
    assert!(
        line("phone-new").ends_with("protocol 2 (sealed requests)"),
        "{listed}"
    );
    // Policy raised: the old device is no longer asked; the new one is.
    e.kill_helper();
    let config = std::fs::read_to_string(&e.config).unwrap_or_default();
    std::fs::write(
        &e.config,
        config.replace("[push]\n", "[push]\nmin_protocol = 2\n"),
    )
    .unwrap_or_else(|err| panic!("{err}"));
    e.start_helper();
    let (code, seen) = e
        .pam(SVC, USER)
        .rhost(RHOST)
        .answer(approve_at_prompt(&new))
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    assert!(old.pending().is_empty(), "the protocol 1 device was asked");
    let log = e.wait_for_log("push skips protocol 1 device(s)");
    let skipped = log
        .lines()
        .find(|l| l.contains("push skips"))
        .unwrap_or_default();
    assert!(
        skipped.contains("\"phone-old\"") && skipped.contains("min_protocol = 2"),
        "{skipped}"
    );
    // And a new protocol 1 enrollment is refused, with the reason on both sides.
    let mut cli = EnrollRun::start(&e, USER);
    let uri = cli.line_starting("pushmfa://");
    let store = pushmfa_authenticator::Store::open(&e.dir.path().join("phone-older"))
        .unwrap_or_else(|err| panic!("{err}"));
    let refused = tokio::runtime::Runtime::new()
        .unwrap_or_else(|err| panic!("{err}"))
        .block_on(pushmfa_authenticator::enroll_protocol(
            &store, &uri, "older", 1,
        ))
        .err()
        .map(|err| err.to_string())
        .unwrap_or_default();
    assert!(refused.contains("needs protocol 2"), "{refused}");
    let out = cli.finish_failed();
    assert!(
        out.contains("accepts protocol 2 devices only (push.min_protocol = 2)"),
        "{out}"
    );
    assert!(store.accounts().unwrap_or_default().is_empty());
}
