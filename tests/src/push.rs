//! Push scenarios: a relay process, devices enrolled through the real CLI,
//! and a "phone" (the authenticator library) that answers on cue.

use crate::{TestEnv, bin};
use pushmfa_authenticator::{Store, answer, enroll_protocol, pending};
use pushmfa_protocol::signed::Decision;
use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// A `pushmfa-relay` process on 127.0.0.1 (killed on drop).
pub struct Relay {
    child: Child,
    pub url: String,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Relay {
    pub fn start() -> Relay {
        Relay::start_with(&[])
    }

    /// Starts it with extra command-line arguments.
    pub fn start_with(args: &[&str]) -> Relay {
        Relay::spawn("127.0.0.1:0", args, None)
    }

    /// Starts it listening on `listen` (an address with port 0).
    pub fn start_on(listen: &str) -> Relay {
        Relay::spawn(listen, &[], None)
    }

    /// Starts it with its open-file limit (soft and hard) set to `files`,
    /// as `ulimit -n` would.
    pub fn start_with_open_files(args: &[&str], files: u64) -> Relay {
        Relay::spawn("127.0.0.1:0", args, Some(files))
    }

    fn spawn(listen: &str, args: &[&str], files: Option<u64>) -> Relay {
        let mut cmd = Command::new(bin("pushmfa-relay"));
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit and prctl are async-signal-safe and touch only
        // the child.
        unsafe {
            cmd.pre_exec(move || {
                // Dies with the test's thread, even when an abort skips Drop.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(n) = files {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd
            .args(["--listen", listen])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn pushmfa-relay: {e}"));
        let line = child
            .stderr
            .take()
            .and_then(|e| BufReader::new(e).lines().next())
            .and_then(Result::ok)
            .unwrap_or_default();
        let url = line
            .strip_prefix("pushmfa-relay: listening on ")
            .unwrap_or_else(|| panic!("relay did not start: {line}"))
            .to_owned();
        Relay { child, url }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it (SIGKILL), as when the relay is down.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Configuration for a helper using `relay`, plus `extra`.
pub fn relay_config(url: &str, extra: &str) -> String {
    format!("[backend]\nkind = \"relay\"\nurl = \"{url}\"\n{extra}")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

/// A software authenticator's store for one test.
#[derive(Clone)]
pub struct Phone {
    pub dir: PathBuf,
}

impl Phone {
    pub fn new(env: &TestEnv, name: &str) -> Phone {
        Phone {
            dir: env.dir.path().join(format!("phone-{name}")),
        }
    }

    fn store(&self) -> Store {
        Store::open(&self.dir).unwrap_or_else(|e| panic!("store: {e}"))
    }

    /// Enrolls through `pushmfa enroll --user USER` (the real CLI and helper);
    /// returns the CLI's stdout (QR, URI, codes). Protocol 2.
    pub fn enroll(&self, env: &TestEnv, user: &str) -> String {
        self.enroll_protocol(env, user, 2)
    }

    /// [`Phone::enroll`] as a protocol 1 device (requests in clear).
    pub fn enroll_v1(&self, env: &TestEnv, user: &str) -> String {
        self.enroll_protocol(env, user, 1)
    }

    fn enroll_protocol(&self, env: &TestEnv, user: &str, protocol: u8) -> String {
        let mut cli = EnrollRun::start(env, user);
        let uri = cli.line_starting("pushmfa://");
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        rt().block_on(enroll_protocol(&self.store(), &uri, &name, protocol))
            .unwrap_or_else(|e| panic!("authenticator enroll: {e}"));
        cli.finish("")
    }

    /// Answers the one pending request (waiting up to 5 s for it).
    pub fn decide(&self, decision: Decision, number: Option<u8>) {
        let store = self.store();
        rt().block_on(async {
            // The number is shown while the request is still on its way,
            // and a poll may wake for another change first: look again.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let req = loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let (reqs, bad) = pending(&store, left)
                    .await
                    .unwrap_or_else(|e| panic!("pending: {e}"));
                assert!(bad.is_empty(), "{bad:?}");
                match reqs.into_iter().next() {
                    Some(r) => break r,
                    None if left.is_zero() => panic!("no pending request"),
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            answer(&req, decision, number)
                .await
                .unwrap_or_else(|e| panic!("answer: {e}"));
        });
    }

    /// The requests the phone offers now (no waiting).
    pub fn pending(&self) -> Vec<String> {
        let store = self.store();
        rt().block_on(async {
            let (reqs, bad) = pending(&store, Duration::ZERO)
                .await
                .unwrap_or_else(|e| panic!("pending: {e}"));
            assert!(bad.is_empty(), "{bad:?}");
            reqs.iter().map(|r| r.describe()).collect()
        })
    }

    pub fn approve(&self, number: u8) {
        self.decide(Decision::Approve, Some(number));
    }

    /// `pushmfa-authenticator offline --yes REQUEST` (the real binary): what
    /// it printed, and the code when it showed one.
    pub fn offline_code(&self, request: &str) -> (String, Option<String>) {
        let out = Command::new(bin("pushmfa-authenticator"))
            .arg("--store")
            .arg(&self.dir)
            .args(["offline", "--yes", request])
            .output()
            .unwrap_or_else(|e| panic!("authenticator: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Code: "))
            .map(str::to_owned);
        (format!("{stdout}{stderr}"), code)
    }

    pub fn store_path(&self) -> &Path {
        &self.dir
    }
}

/// `pushmfa enroll --user USER` (the real CLI) running, its output read
/// line by line.
pub struct EnrollRun {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// Everything it printed so far.
    pub out: String,
}

impl EnrollRun {
    pub fn start(env: &TestEnv, user: &str) -> EnrollRun {
        let mut child = Command::new(bin("pushmfa"))
            .arg("--socket")
            .arg(&env.socket)
            .arg("--config")
            .arg(&env.config)
            .args(["enroll", "--user", user])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn pushmfa enroll: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        EnrollRun {
            child,
            lines: BufReader::new(stdout).lines(),
            out: String::new(),
        }
    }

    /// Reads up to the first line that starts with `prefix`, and returns it.
    pub fn line_starting(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.next() {
                Some(Ok(l)) => {
                    self.out.push_str(&l);
                    self.out.push('\n');
                    if l.starts_with(prefix) {
                        return l;
                    }
                }
                _ => panic!(
                    "pushmfa enroll printed no line starting {prefix:?}:\n{}",
                    self.out
                ),
            }
        }
    }

    /// Reads the rest, checks that it failed, and returns what it printed
    /// on stdout and stderr.
    pub fn finish_failed(mut self) -> String {
        for l in self.lines.by_ref().map_while(Result::ok) {
            self.out.push_str(&l);
            self.out.push('\n');
        }
        let out = self
            .child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !out.status.success(),
            "pushmfa enroll succeeded:\n{}",
            self.out
        );
        format!("{}{}", self.out, String::from_utf8_lossy(&out.stderr))
    }

    /// Reads the rest, checks that it succeeded (`context` goes into the
    /// failure message) and returns everything it printed.
    pub fn finish(mut self, context: &str) -> String {
        for l in self.lines.by_ref().map_while(Result::ok) {
            self.out.push_str(&l);
            self.out.push('\n');
        }
        let status = self.child.wait().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            status.success(),
            "pushmfa enroll failed:\n{}\n{context}",
            self.out
        );
        self.out
    }
}

/// The 2-digit number the user reads off a prompt or info line: the first
/// word of exactly two digits after a space ("... number 47, ...").
pub fn number_in(text: &str) -> u8 {
    let b = text.as_bytes();
    (1..b.len().saturating_sub(1))
        .find(|&i| {
            b[i - 1] == b' '
                && b[i].is_ascii_digit()
                && b[i + 1].is_ascii_digit()
                && b.get(i + 2).is_none_or(|c| !c.is_ascii_alphanumeric())
        })
        .and_then(|i| text[i..i + 2].parse().ok())
        .unwrap_or_else(|| panic!("no number in {text:?}"))
}
