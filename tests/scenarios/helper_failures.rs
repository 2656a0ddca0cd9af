//! The helper missing, dying, hanging or talking nonsense: every case fails
//! closed, quickly, and leaves the state intact.

use pushmfa_protocol::frame;
use pushmfa_protocol::ipc::{Reply, Request, Response};
use pushmfa_tests::{Answer, TestEnv, rc};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

const SVC: &str = "pushmfa-test";

#[test]
fn helper_not_running_is_authinfo_unavail_at_once() {
    let e = TestEnv::new("");
    e.service(SVC, "");
    let start = Instant::now();
    let (code, seen) = e.pam(SVC, "alice").run();
    assert_eq!(code, rc::AUTHINFO_UNAVAIL);
    assert!(seen.is_empty());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn helper_killed_mid_login_fails_and_state_is_intact() {
    let mut e = TestEnv::new("");
    e.start_helper();
    e.service(SVC, "");
    let codes = e.generate("alice");
    let before = std::fs::read(e.state.join("users/alice.json")).unwrap_or_default();
    let pid = e.helper_pid() as i32;
    let code0 = codes[0].clone();
    let (code, _) = e
        .pam(SVC, "alice")
        .answer(Answer::Then(Box::new(move || {
            // The user types a valid code, but the helper dies first.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            code0
        })))
        .run();
    assert_eq!(code, rc::AUTHINFO_UNAVAIL);
    e.kill_helper();
    assert_eq!(
        std::fs::read(e.state.join("users/alice.json")).unwrap_or_default(),
        before
    );
    // A restarted helper finds the state as it was: the code still works once.
    e.start_helper();
    assert_eq!(e.status("alice").codes_left, 10);
    assert_eq!(
        e.pam(SVC, "alice").answer(codes[0].as_str()).run().0,
        rc::SUCCESS
    );
}

/// A fake "helper" that reads the Begin frame and answers with `reply` bytes.
fn fake_helper(e: &TestEnv, reply: Vec<u8>, close: bool) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(&e.socket).unwrap_or_else(|err| panic!("bind: {err}"));
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = frame::read_frame::<Request, _>(&mut s);
            let _ = s.write_all(&reply);
            if !close {
                // Hold the connection open, silent, until the module gives up.
                let mut sink = [0u8; 64];
                let _ = s.read(&mut sink);
            }
        }
    })
}

#[test]
fn garbage_oversized_truncated_and_silent_helpers_fail_closed() {
    let mut oversize = ((pushmfa_protocol::MAX_FRAME_LEN + 1) as u32)
        .to_be_bytes()
        .to_vec();
    oversize.extend(std::iter::repeat_n(b'{', 100));
    let mut garbage = 9u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"\x00\x01garbage");
    let mut wrong_version = Vec::new();
    let body = br#"{"v":9,"msg":{"type":"verdict","outcome":"success"}}"#;
    wrong_version.extend((body.len() as u32).to_be_bytes());
    wrong_version.extend_from_slice(body);
    let truncated = frame::encode(&Response::Verdict(pushmfa_protocol::ipc::Verdict {
        outcome: pushmfa_protocol::ipc::Outcome::Success,
        denied_on_device: false,
    }))
    .map(|b| b[..b.len() - 3].to_vec())
    .unwrap_or_default();
    for (name, reply, close, want) in [
        ("oversized", oversize, true, rc::SYSTEM_ERR),
        ("garbage", garbage, true, rc::SYSTEM_ERR),
        ("wrong version", wrong_version, true, rc::SYSTEM_ERR),
        ("truncated success", truncated, true, rc::AUTHINFO_UNAVAIL),
        ("silent", Vec::new(), false, rc::AUTHINFO_UNAVAIL),
    ] {
        let e = TestEnv::new("");
        e.service(SVC, "timeout=1");
        let fake = fake_helper(&e, reply, close);
        let start = Instant::now();
        let (code, _) = e.pam(SVC, "alice").run();
        assert_eq!(code, want, "{name}");
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{name}: {:?}",
            start.elapsed()
        );
        let _ = fake.join();
    }
}

fn raw_exchange(e: &TestEnv, bytes: &[u8]) -> Option<Response> {
    let mut s = UnixStream::connect(&e.socket).unwrap_or_else(|err| panic!("connect: {err}"));
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    frame::read_frame::<Response, _>(&mut s).ok()
}

#[test]
fn helper_refuses_bad_frames_and_keeps_serving() {
    let mut e = TestEnv::new("");
    e.start_helper();
    e.service(SVC, "");
    let codes = e.generate("alice");
    let refused = |r: Option<Response>| matches!(r, Some(Response::Refused { .. }) | None);

    let mut garbage = 5u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"abcde");
    assert!(refused(raw_exchange(&e, &garbage)));
    assert!(refused(raw_exchange(&e, &u32::MAX.to_be_bytes())));
    assert!(refused(raw_exchange(&e, &[0, 0, 0, 50, b'{'])));
    assert!(refused(raw_exchange(&e, &[0, 0, 0, 0])));
    let out_of_order = frame::encode(&Request::Reply(Reply::Shown {}))
        .map(|b| b.to_vec())
        .unwrap_or_default();
    assert!(matches!(
        raw_exchange(&e, &out_of_order),
        Some(Response::Refused { .. })
    ));
    e.wait_for_log("bad first frame");
    e.wait_for_log("reply without a login");

    // Still serving logins.
    assert_eq!(
        e.pam(SVC, "alice").answer(codes[0].as_str()).run().0,
        rc::SUCCESS
    );
    e.kill_helper();
}

#[test]
fn helper_serves_the_socket_systemd_passes() {
    let mut e = TestEnv::new("");
    e.start_helper_socket_activated();
    e.service(SVC, "");
    // The first connection starts the helper on the inherited socket.
    let codes = e.generate("alice");
    e.wait_for_log("listening on the systemd socket");
    assert_eq!(
        e.pam(SVC, "alice").answer(codes[0].as_str()).run().0,
        rc::SUCCESS
    );
}

#[test]
fn many_logins_at_once_are_served_without_cross_talk() {
    let mut e = TestEnv::new("");
    e.start_helper();
    e.service(SVC, "");
    let users: Vec<(String, Vec<String>)> = (0..20)
        .map(|i| {
            let u = format!("user{i}");
            let c = e.generate(&u);
            (u, c)
        })
        .collect();
    let users = &users;
    let results: Vec<(i32, i32)> = std::thread::scope(|s| {
        let hs: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(i, (u, codes))| {
                let e = &e;
                s.spawn(move || {
                    // Even users type their own code, odd users their neighbour's.
                    let code = if i % 2 == 0 {
                        codes[0].clone()
                    } else {
                        users[i - 1].1[1].clone()
                    };
                    (
                        i as i32,
                        e.pam(SVC, u)
                            .answer(code.as_str())
                            .answer(Answer::Fail)
                            .run()
                            .0,
                    )
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or((-1, -1)))
            .collect()
    });
    for (i, code) in results {
        let want = if i % 2 == 0 {
            rc::SUCCESS
        } else {
            rc::CONV_ERR
        };
        assert_eq!(code, want, "user{i}");
    }
}
