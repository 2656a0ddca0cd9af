//! SO_PEERCRED decides who may do what: a non-root program (a screen locker)
//! may authenticate only its own user and manage only itself.

use pushmfa_tests::{TestEnv, bin, is_root, rc};
use std::process::Command;

const SVC: &str = "pushmfa-test";

/// Runs as `nobody` when we are root; otherwise we are already non-root.
fn as_other() -> Option<&'static str> {
    is_root().then_some("nobody")
}

fn me() -> String {
    if is_root() {
        "nobody".into()
    } else {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default()
    }
}

#[test]
fn non_root_caller_cannot_authenticate_another_user() {
    let mut e = TestEnv::new("");
    e.start_helper();
    e.service(SVC, "");
    let codes = e.generate("root");
    let out = e
        .pamtester_cmd(SVC, "root", &[], as_other())
        .run(&format!("{}\n", codes[0]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    e.wait_for_log("only root may authenticate other users");
    // Nothing was consumed.
    assert_eq!(e.status("root").codes_left, 10);
}

#[test]
fn non_root_caller_can_authenticate_itself() {
    let mut e = TestEnv::new("");
    e.start_helper();
    e.service(SVC, "");
    let user = me();
    let codes = e.generate(&user);
    let out = e
        .pamtester_cmd(SVC, &user, &[], as_other())
        .run(&format!("{}\n", codes[0]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let log = e.wait_for_log("outcome=success");
    assert!(log.contains(&format!("login user=\"{user}\"")), "{log}");
}

#[test]
fn non_root_user_cannot_manage_others() {
    let mut e = TestEnv::new("");
    e.start_helper();
    let mut cmd = match as_other() {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([&format!("--reuid={u}"), "--regid=nogroup", "--clear-groups"])
                .arg(bin("pushmfa"));
            c
        }
        None => Command::new(bin("pushmfa")),
    };
    let out = cmd
        .arg("--socket")
        .arg(&e.socket)
        .args(["recovery", "generate", "--user", "root"])
        .output()
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("only root may manage user root"),
        "{stderr}"
    );
    assert!(!e.status("root").enrolled);
}

#[test]
fn admin_generate_and_unlock_via_cli() {
    let mut e = TestEnv::new("");
    e.start_helper();
    e.service(SVC, "");
    let out = Command::new(bin("pushmfa"))
        .arg("--socket")
        .arg(&e.socket)
        .args(["recovery", "generate", "--user", "carol", "--json"])
        .output()
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(v["user"], "carol");
    let codes: Vec<String> = v["codes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(codes.len(), 10);
    assert_eq!(
        e.pam(SVC, "carol").answer(codes[0].as_str()).run().0,
        rc::SUCCESS
    );
    let status = Command::new(bin("pushmfa"))
        .arg("--socket")
        .arg(&e.socket)
        .args(["status", "--user", "carol"])
        .output()
        .unwrap_or_else(|err| panic!("{err}"));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("recovery codes:  9 left"), "{text}");
}

#[test]
fn one_user_cannot_take_every_helper_slot() {
    if !is_root() {
        eprintln!("skipped: needs root to run clients as another user");
        return;
    }
    let mut e = TestEnv::new("max_connections_per_user = 3\n");
    e.start_helper();
    e.service(SVC, "");
    e.generate("nobody");
    let root_codes = e.generate("root");
    // Three logins by `nobody`, parked at the prompt, hold its three slots.
    let mut parked: Vec<_> = (0..3)
        .map(|_| {
            e.pamtester_cmd(SVC, "nobody", &[], Some("nobody"))
                .spawn_until_prompt("Recovery code: ")
                .0
        })
        .collect();
    let fourth = e.pamtester_cmd(SVC, "nobody", &[], Some("nobody")).run("");
    let stderr = String::from_utf8_lossy(&fourth.stderr);
    assert!(!fourth.status.success());
    assert!(
        stderr.contains("cannot retrieve authentication info"),
        "{stderr}"
    );
    e.wait_for_log("uid 65534 already holds 3 connections");
    // Root callers (sudo, sshd) are not affected.
    assert_eq!(
        e.pam(SVC, "root").answer(root_codes[0].as_str()).run().0,
        rc::SUCCESS
    );
    for p in &mut parked {
        let _ = p.kill();
        let _ = p.wait();
    }
}

#[test]
fn a_connect_close_flood_from_one_user_cannot_flood_the_log() {
    if !is_root() {
        eprintln!("skipped: needs root to run clients as another user");
        return;
    }
    let mut e = TestEnv::new("[log]\nlevel = \"debug\"\n");
    e.start_helper();
    // The socket address is built before fork: the child only makes
    // async-signal-safe calls (setuid, socket, connect, close).
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let path = e.socket.as_os_str().as_encoded_bytes();
    assert!(path.len() < addr.sun_path.len());
    for (dst, src) in addr.sun_path.iter_mut().zip(path) {
        *dst = *src as libc::c_char;
    }
    const FLOOD: usize = 2000;
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        unsafe {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                libc::_exit(2);
            }
            for _ in 0..FLOOD {
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                libc::connect(
                    fd,
                    (&raw const addr).cast(),
                    std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                );
                libc::close(fd);
            }
            libc::_exit(0);
        }
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(status, 0, "flooding child failed");
    // The held-back lines are summarised every few seconds: wait until
    // every connection is accounted for, written or counted.
    let count = |log: &str| {
        let written = log.matches("uid 65534: bad first frame").count();
        let suppressed: usize = log
            .lines()
            .filter_map(|l| l.split("uid 65534: ").nth(1))
            .filter_map(|l| l.strip_suffix(" similar lines suppressed (bad first frame)"))
            .filter_map(|n| n.parse::<usize>().ok())
            .sum();
        (written, suppressed)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (written, suppressed) = loop {
        let (w, s) = count(&e.helper_log());
        if w + s >= FLOOD || std::time::Instant::now() > deadline {
            break (w, s);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    println!("flood of {FLOOD}: {written} lines written, {suppressed} counted in summaries");
    assert_eq!(
        written + suppressed,
        FLOOD,
        "every connection is written or counted"
    );
    assert!(
        written <= 40,
        "{written} warning lines for one user's flood"
    );
    // Root's logins are still logged as usual.
    let codes = e.generate("root");
    e.service(SVC, "");
    assert_eq!(
        e.pam(SVC, "root").answer(codes[0].as_str()).run().0,
        rc::SUCCESS
    );
    e.wait_for_log("outcome=success");
}
