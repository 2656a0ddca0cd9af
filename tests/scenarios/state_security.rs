//! Insecure or corrupt state: the login fails closed (PAM_AUTHINFO_UNAVAIL)
//! with a log line that says what is wrong, and nothing is reset.

use pushmfa_tests::{TestEnv, is_root, rc};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const SVC: &str = "pushmfa-test";

fn enrolled() -> (TestEnv, Vec<String>) {
    let mut e = TestEnv::new("");
    e.start_helper();
    e.service(SVC, "");
    let codes = e.generate("alice");
    (e, codes)
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|err| panic!("chmod: {err}"));
}

/// The login fails closed before any prompt and the helper says why.
fn assert_fails_closed(e: &TestEnv, code: &str, log_needle: &str) {
    let (rc_, seen) = e.pam(SVC, "alice").answer(code).run();
    assert_eq!(rc_, rc::AUTHINFO_UNAVAIL, "{seen:?}");
    let log = e.wait_for_log(log_needle);
    assert!(log.contains("outcome=unavailable"), "{log}");
}

#[test]
fn world_writable_state_dir() {
    let (e, codes) = enrolled();
    chmod(&e.state, 0o777);
    assert_fails_closed(&e, &codes[0], "lets group or others write it");
    chmod(&e.state, 0o700);
    assert_eq!(
        e.pam(SVC, "alice").answer(codes[0].as_str()).run().0,
        rc::SUCCESS
    );
}

#[test]
fn world_writable_state_file() {
    let (e, codes) = enrolled();
    chmod(&e.state.join("users/alice.json"), 0o666);
    assert_fails_closed(&e, &codes[0], "mode 0666");
}

#[test]
fn state_file_is_a_symlink() {
    let (e, codes) = enrolled();
    let file = e.state.join("users/alice.json");
    let elsewhere = e.dir.path().join("planted.json");
    fs::rename(&file, &elsewhere).unwrap_or_else(|err| panic!("{err}"));
    std::os::unix::fs::symlink(&elsewhere, &file).unwrap_or_else(|err| panic!("{err}"));
    assert_fails_closed(&e, &codes[0], "symbolic link");
}

#[test]
fn state_file_with_wrong_owner() {
    if !is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let (e, codes) = enrolled();
    let file = e.state.join("users/alice.json");
    std::os::unix::fs::chown(&file, Some(65534), None).unwrap_or_else(|err| panic!("{err}"));
    assert_fails_closed(&e, &codes[0], "owned by uid 65534");
}

#[test]
fn corrupt_state_is_reported_not_reset() {
    let (e, codes) = enrolled();
    let file = e.state.join("users/alice.json");
    let good = fs::read_to_string(&file).unwrap_or_default();
    let truncated = &good[..good.len() / 2];
    fs::write(&file, truncated).unwrap_or_else(|err| panic!("{err}"));
    assert_fails_closed(&e, &codes[0], "corrupt state");
    assert_eq!(fs::read_to_string(&file).unwrap_or_default(), truncated);
    // The admin restores it: everything works again, nothing was lost.
    fs::write(&file, &good).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        e.pam(SVC, "alice").answer(codes[0].as_str()).run().0,
        rc::SUCCESS
    );
}

#[test]
fn state_dir_replaced_by_a_symlink() {
    let (e, codes) = enrolled();
    let moved = e.dir.path().join("moved-state");
    fs::rename(&e.state, &moved).unwrap_or_else(|err| panic!("{err}"));
    std::os::unix::fs::symlink(&moved, &e.state).unwrap_or_else(|err| panic!("{err}"));
    assert_fails_closed(&e, &codes[0], "symbolic link");
}

/// Review finding: stored Argon2 parameters were used unchecked, and a
/// memory cost of 4,000,000,000 KiB aborted the helper on allocation,
/// ending every login in progress. Now that user's state is refused (like
/// other bad state) and everyone else logs in as before.
#[test]
fn absurd_stored_hash_parameters_refuse_that_user_only() {
    let (e, codes) = enrolled();
    let bob = e.generate("bob");
    let file = e.state.join("users/alice.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&fs::read(&file).unwrap_or_default()).unwrap_or_default();
    for (key, value) in [
        ("memory_kib", 4_000_000_000u64),
        ("iterations", 1_000_000),
        ("parallelism", 0),
    ] {
        let saved = state["recovery"][key].clone();
        state["recovery"][key] = serde_json::json!(value);
        fs::write(&file, serde_json::to_vec(&state).unwrap_or_default()).unwrap_or_default();
        assert_fails_closed(
            &e,
            &codes[0],
            &format!("recovery.{key} = {value} is out of range"),
        );
        state["recovery"][key] = saved;
    }
    // The helper is still there for everyone else.
    assert_eq!(
        e.pam(SVC, "bob").answer(bob[0].as_str()).run().0,
        rc::SUCCESS
    );
    fs::write(&file, serde_json::to_vec(&state).unwrap_or_default()).unwrap_or_default();
    assert_eq!(
        e.pam(SVC, "alice").answer(codes[1].as_str()).run().0,
        rc::SUCCESS
    );
}
