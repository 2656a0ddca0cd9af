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

/// Review finding: a world-writable configuration directory was reported
/// as a bad configuration file; the error now names the directory.
#[test]
fn insecure_config_directory_is_named() {
    let e = TestEnv::new("");
    let dir = e.dir.path().join("etc");
    std::fs::create_dir(&dir).unwrap_or_else(|err| panic!("{err}"));
    let config = dir.join("pushmfa.toml");
    std::fs::copy(&e.config, &config).unwrap_or_else(|err| panic!("{err}"));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
        .unwrap_or_else(|err| panic!("{err}"));
    let out = Command::new(bin("pushmfa-helper"))
        .args(["--check", "--config"])
        .arg(&config)
        .output()
        .unwrap_or_else(|err| panic!("{err}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("its directory {}: mode 0777", dir.display()))
            && err.contains("chmod go-w"),
        "{err}"
    );
}

#[test]
fn doctor_checks_the_relay() {
    use pushmfa_tests::push::{Relay, relay_config};
    let mut relay = Relay::start();
    let mut e = TestEnv::new(&relay_config(&relay.url, ""));
    e.start_helper();
    let doctor = || {
        let out = Command::new(bin("pushmfa"))
            .arg("--config")
            .arg(&e.config)
            .arg("doctor")
            .output()
            .unwrap_or_else(|err| panic!("{err}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, text) = doctor();
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("[ok  ] relay: {} answers", relay.url)),
        "{text}"
    );
    relay.stop();
    let (ok, text) = doctor();
    assert!(!ok, "{text}");
    assert!(
        text.contains("[FAIL] relay:") && text.contains("pushmfa configure --relay-url"),
        "{text}"
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

fn configure(e: &TestEnv, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin("pushmfa"))
        .arg("--config")
        .arg(&e.config)
        .arg("configure")
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("{err}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn configure_points_the_helper_at_a_relay_in_one_command() {
    use pushmfa_protocol::signed::Decision;
    use pushmfa_tests::push::{Phone, Relay, number_in};
    let relay = Relay::start();
    let mut e = TestEnv::new("");
    let (ok, out) = configure(&e, &["--relay-url", &relay.url, "--host-name", "db1"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("The relay at {} answers.", relay.url)),
        "{out}"
    );

    // The helper uses it: a push login approved on an enrolled phone.
    e.start_helper();
    e.service("pushmfa-test", "");
    let phone = Phone::new(&e, "phone");
    phone.enroll(&e, "alice");
    let dir = phone.store_path().to_owned();
    let (code, seen) = e
        .pam("pushmfa-test", "alice")
        .tty("pts/1")
        .on_info(move |text| {
            Phone { dir: dir.clone() }.decide(Decision::Approve, Some(number_in(text)))
        })
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    let log = e.wait_for_log("outcome=success");
    assert!(log.contains("method=push"), "{log}");
}

#[test]
fn configure_warns_about_a_silent_relay_and_refuses_bad_urls() {
    let e = TestEnv::new("");
    let before = std::fs::read_to_string(&e.config).unwrap_or_else(|err| panic!("{err}"));
    // A port nothing listens on: written, with a warning.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|err| panic!("{err}"));
    let dead = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|err| panic!("{err}"))
    );
    drop(listener);
    let (ok, out) = configure(&e, &["--relay-url", &dead]);
    assert!(ok, "{out}");
    assert!(out.contains("does not answer yet"), "{out}");

    let written = std::fs::read_to_string(&e.config).unwrap_or_else(|err| panic!("{err}"));
    for (args, expect) in [
        (&["--relay-url", "relay.example.org"][..], "backend.url"),
        (&[][..], "required"),
        (
            &["--relay-url", "https://r", "--no-relay"][..],
            "cannot be used with",
        ),
    ] {
        let (ok, out) = configure(&e, args);
        assert!(!ok, "{args:?}: {out}");
        assert!(out.contains(expect), "{args:?}: {out}");
        assert_eq!(
            std::fs::read_to_string(&e.config).unwrap_or_else(|err| panic!("{err}")),
            written,
            "{args:?} changed the file"
        );
    }
    assert_ne!(before, written);
}

#[test]
fn relay_reads_its_config_file_and_refuses_a_bad_one() {
    use pushmfa_tests::push::Relay;
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("{err}"));
    let file = dir.path().join("relay.toml");
    let data = dir.path().join("channels");
    std::fs::write(
        &file,
        format!("listen = \"127.0.0.1:1\"\ndata = \"{}\"\n", data.display()),
    )
    .unwrap_or_else(|err| panic!("{err}"));
    // --listen on the command line wins over the file's port 1.
    let relay = Relay::start_with(&["--config", &file.to_string_lossy()]);
    assert!(!relay.url.ends_with(":1"), "{}", relay.url);
    assert!(
        data.is_dir(),
        "the data directory from the file was not used"
    );
    drop(relay);

    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nrate_per_sec = -1.0\n")
        .unwrap_or_else(|err| panic!("{err}"));
    let out = Command::new(bin("pushmfa-relay"))
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("relay.toml:2:1: key `rate_per_sec`: must be above 0"),
        "{err}"
    );
}
