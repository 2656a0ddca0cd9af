//! The shipped systemd units and pam-auth-update profile.

use std::path::{Path, PathBuf};
use std::process::Command;

fn packaging(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(packaging(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `systemd-analyze security --offline` exposure of a unit file (lower is better).
fn exposure(unit: &Path) -> Option<f64> {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(unit)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    line.split(": ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn units_are_hardened() {
    for unit in [
        "systemd/pushmfa-helper.service",
        "systemd/pushmfa-relay.service",
    ] {
        match exposure(&packaging(unit)) {
            Some(score) => assert!(score <= 2.0, "{unit}: exposure {score} > 2.0"),
            None => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI needs systemd-analyze (package systemd)"
                );
                eprintln!("skipped {unit}: systemd-analyze not available");
            }
        }
    }
}

#[test]
fn helper_unit_keeps_what_the_helper_needs() {
    let unit = read("systemd/pushmfa-helper.service");
    // SO_PEERCRED must see real uids, and /proc of callers must be readable.
    assert!(
        !unit.lines().any(|l| l.starts_with("PrivateUsers=")),
        "PrivateUsers breaks SO_PEERCRED"
    );
    assert!(
        !unit.lines().any(|l| l.starts_with("ProtectProc=invisible")),
        "hides sshd's processes"
    );
    assert!(unit.contains("User=_pushmfa") && unit.contains("StateDirectory=pushmfa"));
    assert!(unit.contains("--config /etc/pushmfa/pushmfa.toml"));
    let socket = read("systemd/pushmfa-helper.socket");
    assert!(
        socket.contains("ListenStream=/run/pushmfa/helper.sock")
            && socket.contains("SocketMode=0666")
    );
    // The socket path is the module's default.
    assert!(socket.contains(pam_pushmfa::args::DEFAULT_SOCKET));
    let sysusers = read("systemd/pushmfa.sysusers");
    assert!(sysusers.lines().any(|l| l.starts_with("u _pushmfa ")));
}

/// The arguments of a unit's `ExecStart=` line.
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart= in {unit}"));
    line.split_whitespace().map(String::from).collect()
}

#[test]
fn units_start_the_binaries_with_arguments_they_accept() {
    use clap::Parser;
    let helper = exec_start(&read("systemd/pushmfa-helper.service"));
    assert_eq!(helper[0], "/usr/libexec/pushmfa/pushmfa-helper");
    let args =
        pushmfa_helper::args::Args::try_parse_from(&helper).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(args.config, Path::new(pushmfa_config::DEFAULT_PATH));

    let unit = read("systemd/pushmfa-relay.service");
    let relay = exec_start(&unit);
    assert_eq!(relay[0], "/usr/bin/pushmfa-relay");
    let args = pushmfa_relay::args::Args::try_parse_from(&relay).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        args.config.as_deref(),
        Some(Path::new(pushmfa_config::relay::RELAY_DEFAULT_PATH))
    );
    // Channels go to the unit's state directory, the only writable place.
    assert_eq!(
        args.data.as_deref(),
        Some(Path::new("/var/lib/pushmfa-relay"))
    );
    assert!(unit.contains("StateDirectory=pushmfa-relay\n"));
}

#[test]
fn pam_auth_update_profile_is_off_by_default_and_additional() {
    let profile = read("pam-configs/pushmfa");
    assert!(
        profile.lines().any(|l| l == "Default: no"),
        "enabling it before users enroll would lock everyone out"
    );
    assert!(profile.lines().any(|l| l == "Auth-Type: Additional"));
    assert!(profile.contains("\t[success=ok default=die]\tpam_pushmfa.so"));
}

#[test]
fn man_pages_are_generated_from_the_code() {
    let dir = packaging("man");
    for (name, bytes) in pushmfa_tests::man::pages() {
        let committed = std::fs::read(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == bytes,
            "packaging/man/{name} is out of date: run `cargo run -p pushmfa-tests --bin pushmfa-man`"
        );
    }
    // They render, and say what they should.
    let page = String::from_utf8(std::fs::read(dir.join("pushmfa.1")).unwrap_or_default())
        .unwrap_or_default();
    assert!(
        page.contains("enroll") && page.contains("recovery"),
        "{page}"
    );
    let pam = String::from_utf8(std::fs::read(dir.join("pam_pushmfa.8")).unwrap_or_default())
        .unwrap_or_default();
    assert!(pam.contains(pam_pushmfa::args::DEFAULT_SOCKET));
    if let Ok(out) = Command::new("man")
        .arg("-l")
        .arg(dir.join("pushmfa-helper.8"))
        .env("MANPAGER", "cat")
        .output()
    {
        if out.status.success() {
            assert!(String::from_utf8_lossy(&out.stdout).contains("--config"));
        }
    }
}
