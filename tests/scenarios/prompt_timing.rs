//! How soon the first prompt appears must not tell who has a phone: the
//! helper shows the number while the push is still on its way to the relay
//! (review finding 6). Measured at the helper's socket, in front of a relay
//! that answers 50 ms late.

use pushmfa_protocol::frame::{read_frame, write_frame};
use pushmfa_protocol::ipc::{Begin, Request, Response, Step};
use pushmfa_tests::TestEnv;
use pushmfa_tests::push::{Phone, Relay, relay_config};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const DELAY: Duration = Duration::from_millis(50);

/// A TCP proxy on loopback in front of `upstream` (`127.0.0.1:port`) that
/// holds every chunk coming back from it for `delay`: a relay far away.
fn slow_proxy(upstream: &str, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let upstream = upstream.to_owned();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n @ 1..) = s_read.read(&mut buf) {
                    std::thread::sleep(delay);
                    if c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    format!("http://{addr}")
}

/// From sending `Begin` for `user` to receiving the helper's first step;
/// then the client hangs up (the helper withdraws and frees the slot).
fn first_step_after(e: &TestEnv, user: &str) -> Duration {
    let mut s = UnixStream::connect(&e.socket).unwrap_or_else(|err| panic!("{err}"));
    let begin = Request::Begin(Begin {
        user: user.into(),
        service: "pushmfa-test".into(),
        rhost: None,
        tty: None,
        ruser: None,
        silent: false,
        after_denial: false,
    });
    let t = Instant::now();
    write_frame(&mut s, &begin).unwrap_or_else(|err| panic!("{err}"));
    let first: Response = read_frame(&mut s).unwrap_or_else(|err| panic!("{err}"));
    let took = t.elapsed();
    assert!(
        matches!(first, Response::Step(Step::Info { ref text, .. }) if text.contains("number")),
        "{user}: {first:?}"
    );
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn the_first_prompt_comes_as_fast_with_a_phone_as_without() {
    let relay = Relay::start();
    let addr = relay.url.trim_start_matches("http://").to_owned();
    let slow = slow_proxy(&addr, DELAY);
    // Many logins in a row: no rate limit in the way.
    let mut e = TestEnv::new(&relay_config(&slow, "[push]\nrate_limit_count = 1000\n"));
    e.start_helper();
    Phone::new(&e, "phone").enroll(&e, "alice");
    let (mut enrolled, mut unenrolled) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        enrolled.push(first_step_after(&e, "alice"));
        unenrolled.push(first_step_after(&e, "bob"));
        // Let the withdrawal of alice's request finish before the next.
        std::thread::sleep(DELAY * 3);
    }
    let (with_phone, without) = (median(enrolled), median(unenrolled));
    println!("first step: enrolled {with_phone:?}, unenrolled {without:?} (relay {DELAY:?} late)");
    // Waiting for the relay would add the whole delay; within noise is far less.
    assert!(
        with_phone < without + DELAY / 2,
        "enrolled {with_phone:?} vs unenrolled {without:?}: the prompt waited for the relay"
    );
}
