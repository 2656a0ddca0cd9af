//! Mistakes in the PAM line or the configuration are loud, never ignored.

use pushmfa_tests::{TestEnv, bin, rc};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn unknown_module_argument_is_service_err() {
    let mut e = TestEnv::new("");
    e.start_helper();
    e.generate("alice");
    for args in [
        "frobnicate",
        "sokcet=/tmp/x",
        "timeout=0",
        "socket=relative",
    ] {
        e.service("bad-args", args);
        let (code, seen) = e.pam("bad-args", "alice").run();
        assert_eq!(code, rc::SERVICE_ERR, "{args}");
        assert!(seen.is_empty(), "{args}: {seen:?}");
    }
}

fn helper_check(e: &TestEnv) -> (bool, String) {
    let out = Command::new(bin("pushmfa-helper"))
        .arg("--config")
        .arg(&e.config)
        .arg("--check")
        .output()
        .unwrap_or_else(|err| panic!("{err}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_config_key_is_reported_with_line_and_key() {
    let e = TestEnv::new("[policy]\nunenroled = \"deny\"\n");
    let (ok, err) = helper_check(&e);
    assert!(!ok);
    assert!(
        err.contains("pushmfa.toml:5:1: key `unenroled`: unknown field"),
        "{err}"
    );
}

#[test]
fn insecure_config_file_is_refused() {
    let e = TestEnv::new("");
    assert!(helper_check(&e).0);
    std::fs::set_permissions(&e.config, std::fs::Permissions::from_mode(0o666))
        .unwrap_or_else(|err| panic!("{err}"));
    let (ok, err) = helper_check(&e);
    assert!(!ok);
    assert!(
        err.contains("refusing to use") && err.contains("chmod go-w"),
        "{err}"
    );
}

#[test]
fn doctor_reports_a_healthy_install() {
    let mut e = TestEnv::new("");
    e.start_helper();
    let out = Command::new(bin("pushmfa"))
        .arg("--config")
        .arg(&e.config)
        .arg("doctor")
        .output()
        .unwrap_or_else(|err| panic!("{err}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("[ok  ] helper socket") && text.contains("answers"),
        "{text}"
    );
}
