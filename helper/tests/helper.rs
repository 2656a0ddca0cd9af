//! The helper as an admin starts it (this file also makes `cargo test` build `pushmfa-helper`).

use std::process::Command;

#[test]
fn help_explains_the_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_pushmfa-helper"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in ["--config", "--socket", "--check"] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
}

#[test]
fn helper_refuses_unknown_config_key_with_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pushmfa.toml");
    std::fs::write(
        &cfg,
        "[helper]\nstate_dir = \"/tmp/x\"\n\n[recovery]\nmax_tires = 3\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pushmfa-helper"))
        .args(["--config", cfg.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pushmfa.toml:5:1: key `max_tires`"), "{err}");
}
