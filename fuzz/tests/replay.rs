//! Replays every committed corpus and regression input through its target,
//! so a past crash fails `cargo test` without cargo-fuzz; checks the seed
//! inputs the corpora started from; and round-trips generated values.
//!
//! `PUSHMFA_WRITE_SEEDS=1 cargo test -p pushmfa-fuzz --test replay` writes
//! the seeds into `fuzz/corpus/<target>/`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use proptest::prelude::*;
use pushmfa_protocol::enroll::EnrollUri;
use pushmfa_protocol::frame;
use pushmfa_protocol::ipc::{AdminRequest, Begin, Reply, Request};
use pushmfa_protocol::signed::{
    APPROVAL_TAG, Approval, CHALLENGE_TAG, Challenge, Context, Decision,
};
use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("signed_messages", pushmfa_fuzz::signed_messages),
    ("ipc_frame", pushmfa_fuzz::ipc_frame),
    ("enroll_uri", pushmfa_fuzz::enroll_uri),
    ("relay_request", pushmfa_fuzz::relay_request),
    ("config_toml", pushmfa_fuzz::config_toml),
    ("recovery_code", pushmfa_fuzz::recovery_code),
    ("state_file", pushmfa_fuzz::state_file),
    ("sealed_messages", pushmfa_fuzz::sealed_messages),
    ("offline_request", pushmfa_fuzz::offline_request),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_and_regression_input_passes_its_target() {
    let mut total = 0;
    for (name, target) in TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} is empty");
        for path in corpus
            .iter()
            .chain(&inputs(&fuzz_dir().join("regressions").join(name)))
        {
            let bytes = std::fs::read(path).unwrap();
            // A panic names the input, so it can be run alone.
            eprintln!("{name}: {}", path.display());
            target(&bytes);
            total += 1;
        }
    }
    println!("replayed {total} inputs");
}

fn challenge() -> Challenge {
    Challenge {
        id: [3; 32],
        host_id: [4; 32],
        host_name: "web-1".into(),
        context: Context {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: "203.0.113.9".into(),
            tty: "ssh".into(),
        },
        issued_at: 1_700_000_000,
        expires_at: 1_700_000_060,
    }
}

fn frame_of(msg: &impl serde::Serialize) -> Vec<u8> {
    frame::encode(msg).unwrap().to_vec()
}

/// Valid inputs the corpora start from: one or more per parser branch.
fn vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("../../protocol/testdata/vectors.json")).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// What a device seals to the host for approval `a` (no assertion).
fn sealed_answer(a: &Approval) -> Vec<u8> {
    pushmfa_protocol::envelope::Answer {
        approval: a.encode(),
        signature: [6; 64],
        assertion: None,
    }
    .encode()
    .unwrap()
}

/// protocol/testdata/vectors.json's `sealed_to_device`.
fn sealed_vector() -> Vec<u8> {
    unhex(vectors()["sealed_to_device"].as_str().unwrap())
}

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let c = challenge();
    let a = Approval::answer(&c, Decision::Approve, Some(42), [5; 16]);
    let after = |tag: &[u8], bytes: Vec<u8>| bytes[tag.len()..].to_vec();
    let uri = EnrollUri {
        relay: "https://relay.example.org".into(),
        enrollment_id: "abcDEF123".into(),
        secret: [9; 32],
        host_key: [4; 65],
        host_name: "web-1".into(),
        issuer: "pushmfa".into(),
        account: "alice".into(),
        user_verification: false,
    };
    let begin = Request::Begin(Begin {
        user: "alice".into(),
        service: "sudo".into(),
        rhost: Some("203.0.113.9".into()),
        tty: Some("/dev/pts/1".into()),
        ruser: None,
        silent: false,
        after_denial: false,
    });
    let answer = Request::Reply(Reply::Answer {
        text: String::from("42").into(),
    });
    let admin = Request::Admin(AdminRequest::Ping {});
    let key = B64.encode([4u8; 65]);
    let registration = format!(
        r#"{{"public_key":"{key}","device_name":"phone","mac":"{}"}}"#,
        B64.encode([1u8; 32])
    );
    let posted = format!(
        r#"{{"id":"{}","expires_in":60,"challenge":"{}","signature":"{}"}}"#,
        B64.encode([3u8; 32]),
        B64.encode(c.encode()),
        B64.encode([0u8; 64])
    );
    let response = format!(
        r#"{{"response":"{}","signature":"{}"}}"#,
        B64.encode(a.encode()),
        B64.encode([0u8; 64])
    );
    // Protocol 2: the same calls with sealed bodies and an encryption key.
    let registration_v2 = format!(
        r#"{{"public_key":"{key}","device_name":"phone","mac":"{}","encryption_key":"{key}"}}"#,
        B64.encode([1u8; 32])
    );
    let posted_sealed = format!(
        r#"{{"id":"{}","expires_in":60,"sealed":"{}"}}"#,
        B64.encode([4u8; 32]),
        B64.encode(sealed_vector())
    );
    let response_sealed = format!(r#"{{"sealed":"{}"}}"#, B64.encode(sealed_vector()));
    let push = format!(
        r#"{{"endpoint":"https://fcm.googleapis.com/fcm/send/x","p256dh":"{key}","auth":"{}"}}"#,
        B64.encode([2u8; 16])
    );
    let with = |pick: u8, body: &str| [&[pick][..], body.as_bytes()].concat();
    let state = format!(
        r#"{{"version":1,"devices":[{{"id":"AAAAAAAAAAAAAAAAAAAAAA","name":"phone","public_key":"{key}","channel_id":"c","channel_token":"t","added_at":1}}],"recovery":{{"generated_at":1,"salt":"{}","memory_kib":19456,"iterations":2,"parallelism":1,"unused":["{}"]}},"failures":{{"consecutive":1,"last_failure_at":5}},"push_muted_until":null}}"#,
        B64.encode([0u8; 16]),
        B64.encode([0u8; 32]),
    );
    vec![
        (
            "signed_messages",
            "challenge",
            [&[0u8][..], &after(CHALLENGE_TAG, c.encode())].concat(),
        ),
        (
            "signed_messages",
            "approval",
            [&[1u8][..], &after(APPROVAL_TAG, a.encode())].concat(),
        ),
        ("ipc_frame", "begin", frame_of(&begin)),
        ("ipc_frame", "answer", frame_of(&answer)),
        ("ipc_frame", "admin_ping", frame_of(&admin)),
        ("enroll_uri", "scheme", uri.to_uri().into_bytes()),
        ("enroll_uri", "app_link", uri.to_app_link().into_bytes()),
        (
            "relay_request",
            "create_enrollment",
            with(0, r#"{"ttl_secs":60}"#),
        ),
        ("relay_request", "register_device", with(1, &registration)),
        ("relay_request", "post_challenge", with(2, &posted)),
        ("relay_request", "post_response", with(3, &response)),
        ("relay_request", "put_push", with(4, &push)),
        (
            "relay_request",
            "register_device_v2",
            with(1, &registration_v2),
        ),
        (
            "relay_request",
            "post_challenge_sealed",
            with(2, &posted_sealed),
        ),
        (
            "relay_request",
            "post_response_sealed",
            with(3, &response_sealed),
        ),
        (
            "config_toml",
            "pushmfa",
            include_bytes!("../../config/pushmfa.toml").to_vec(),
        ),
        (
            "config_toml",
            "relay",
            include_bytes!("../../config/relay.toml").to_vec(),
        ),
        ("recovery_code", "dashed", b"ABCD-EFGH-JKMN-PQRS".to_vec()),
        ("recovery_code", "sloppy", b" abcd efgh ijkl mnop ".to_vec()),
        (
            "sealed_messages",
            "to_device",
            [&[0u8][..], &sealed_vector()].concat(),
        ),
        (
            "sealed_messages",
            "answer",
            [&[1u8][..], &sealed_answer(&a)].concat(),
        ),
        ("state_file", "enrolled", state.into_bytes()),
        (
            "offline_request",
            "request",
            pushmfa_protocol::offline::request_text(&c.encode(), &[7; 64]).into_bytes(),
        ),
        ("offline_request", "code", b"1234 5678".to_vec()),
    ]
}

/// Found by the campaign: after enough `POST /v1/enrollments` the relay
/// answers 503 at its open-enrollment cap, which the target took for a
/// server error. The crash needed thousands of earlier inputs, so it is
/// replayed here as a sequence rather than as one file.
#[test]
fn relay_request_accepts_the_enrollment_caps_503() {
    // Past the default cap too, in case the fixture's own cap changes.
    for _ in 0..10_050 {
        pushmfa_fuzz::relay_request(b"\0{}");
    }
}

#[test]
fn seeds_pass_their_targets_and_reach_the_parsers() {
    let write = std::env::var_os("PUSHMFA_WRITE_SEEDS").is_some();
    for (name, seed, bytes) in seeds() {
        let target = TARGETS.iter().find(|(n, _)| *n == name).unwrap().1;
        target(&bytes);
        if write {
            let dir = fuzz_dir().join("corpus").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("seed-{seed}")), &bytes).unwrap();
        }
    }
    // The seeds are valid, so the targets' properties ran on real values.
    let key = pushmfa_protocol::sealed::OpeningKey::from_secret(&unhex(
        vectors()["sealed_recipient_secret"].as_str().unwrap(),
    ))
    .unwrap();
    let to_device = pushmfa_protocol::sealed::Direction::ToDevice;
    assert!(
        key.open(to_device, pushmfa_fuzz::SEALED_BINDING, &sealed_vector())
            .is_ok()
    );
    let state = seeds().into_iter().find(|(name, ..)| *name == "state_file");
    assert!(pushmfa_state::parse_state(&state.unwrap().2).is_ok());
    let request = seeds().into_iter().find(|(_, seed, _)| *seed == "request");
    let request = String::from_utf8(request.unwrap().2).unwrap();
    assert!(pushmfa_protocol::offline::parse_request_text(&request).is_ok());
}

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ -~\u{e9}\u{202e}\u{1F600}]{0,40}").unwrap()
}

fn context() -> impl Strategy<Value = Context> {
    (text(), text(), text(), text()).prop_map(|(user, service, rhost, tty)| Context {
        user,
        service,
        rhost,
        tty,
    })
}

proptest! {
    #[test]
    fn challenges_round_trip(id: [u8; 32], host_id: [u8; 32], host_name in text(),
                             context in context(), issued_at: u64, expires_at: u64) {
        let c = Challenge { id, host_id, host_name, context, issued_at, expires_at };
        prop_assert_eq!(Challenge::decode(&c.encode()), Ok(c));
    }

    #[test]
    fn approvals_round_trip(c_id: [u8; 32], context in context(), decision in 1u8..=3,
                            number in proptest::option::of(0u8..=99), device_id: [u8; 16]) {
        let decision = match decision { 1 => Decision::Approve, 2 => Decision::Deny, _ => Decision::Fraud };
        let a = Approval { challenge_id: c_id, host_id: [1; 32], context, issued_at: 5,
                           expires_at: 9, decision, number, device_id };
        prop_assert_eq!(Approval::decode(&a.encode()), Ok(a));
    }

    #[test]
    fn begin_frames_round_trip(user in text(), service in text(), rhost in proptest::option::of(text()),
                               silent: bool) {
        let msg = Request::Begin(Begin { user, service, rhost, tty: None, ruser: None, silent,
                                         after_denial: false });
        let bytes = frame::encode(&msg).unwrap();
        prop_assert_eq!(frame::read_frame::<Request, _>(&mut bytes.as_slice()).unwrap(), msg);
    }

    #[test]
    fn enroll_uris_round_trip(relay in "https?://[a-z0-9][a-z0-9.:/%-]{0,29}", id in "[A-Za-z0-9_-]{1,40}", secret: [u8; 32],
                              host_name in text(), account in text()) {
        let uri = EnrollUri { relay, enrollment_id: id, secret, host_key: [4; 65], host_name,
                              issuer: "pushmfa".into(), account, user_verification: secret[0] & 1 == 1 };
        let parsed = EnrollUri::parse(&uri.to_uri()).unwrap();
        prop_assert_eq!(parsed.to_uri(), uri.to_uri());
        prop_assert_eq!(parsed.secret, secret);
        prop_assert_eq!(parsed.user_verification, uri.user_verification);
    }

    #[test]
    fn garbage_never_panics_a_target(pick in 0usize..7, bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        (TARGETS[pick].1)(&bytes);
    }
}
