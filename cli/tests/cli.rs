//! The CLI as a user runs it (this file also makes `cargo test` build `pushmfa`).

use std::process::Command;

#[test]
fn help_explains_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_pushmfa"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in ["recovery", "status", "unlock", "doctor", "--socket"] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
}

#[test]
fn unreachable_helper_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pushmfa"))
        .args([
            "--socket",
            dir.path().join("none.sock").to_str().unwrap(),
            "status",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to the helper") && err.contains("pushmfa doctor"),
        "{err}"
    );
}
