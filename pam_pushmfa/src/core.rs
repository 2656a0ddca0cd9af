//! The module's logic, independent of libpam: relay the helper's steps to a
//! [`Conversation`] until a verdict, over any [`Channel`]. Unit tests drive it
//! with a scripted conversation and a fake helper on a socket pair.

use crate::args::{MAX_WAIT, ModuleArgs};
use pushmfa_protocol::frame::{self, FrameError};
use pushmfa_protocol::ipc::{Begin, Outcome, Reply, Request, Response, Step, Verdict};
use pushmfa_protocol::text::sanitize;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// A conversation step failed or the application gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvError;

/// What the module can say to the user (PAM I/O, behind a trait for tests).
pub trait Conversation {
    fn info(&mut self, text: &str) -> Result<(), ConvError>;
    fn error(&mut self, text: &str) -> Result<(), ConvError>;
    fn prompt(&mut self, text: &str, echo: bool) -> Result<Zeroizing<String>, ConvError>;
}

/// A byte stream to the helper whose reads and writes can time out.
pub trait Channel: Read + Write {
    /// Everything read or written from now on must be done within
    /// `timeout` in all: a deadline for the next message, not a limit per
    /// read (a helper dripping one byte at a time cannot stretch it).
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()>;
}

/// The connection to the helper. Writes use `send(MSG_NOSIGNAL)`: a plain
/// `write` to a socket the helper closed would raise SIGPIPE, which kills a
/// host program (sshd, sudo) that has not ignored it.
pub struct HelperStream(pub UnixStream, Option<Instant>);

impl HelperStream {
    pub fn new(stream: UnixStream) -> HelperStream {
        HelperStream(stream, None)
    }

    /// Sets the socket's timeouts to what is left before the deadline.
    fn before_deadline(&self) -> io::Result<()> {
        let Some(deadline) = self.1 else {
            return Ok(());
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the helper did not finish its message in time",
            ));
        }
        self.0.set_read_timeout(Some(left))?;
        self.0.set_write_timeout(Some(left))
    }
}

impl Read for HelperStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.before_deadline()?;
        self.0.read(buf)
    }
}

impl Write for HelperStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.before_deadline()?;
        // SAFETY: buf is a valid readable slice for its length; the fd is owned by self.0.
        let n = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Channel for HelperStream {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.1 = Some(Instant::now() + timeout);
        self.before_deadline()
    }
}

/// The PAM items the helper needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginItems {
    pub user: String,
    pub service: String,
    pub rhost: Option<String>,
    pub tty: Option<String>,
    pub ruser: Option<String>,
    /// PAM_SILENT was passed.
    pub silent: bool,
    /// An earlier attempt in this PAM transaction was denied on a device.
    pub after_denial: bool,
}

/// The module's result, mapped 1:1 to a PAM code in `lib.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleCode {
    Success,
    AuthErr,
    MaxTries,
    Ignore,
    AuthinfoUnavail,
    SystemErr,
    ServiceErr,
    ConvErr,
    PermDenied,
    UserUnknown,
}

/// Longest answer forwarded to the helper. Longer input is cut here (no
/// valid answer is anywhere near this long) so it still fits in a frame and
/// the helper can reject it with a clear message.
pub const MAX_ANSWER_LEN: usize = 1024;

/// More steps than any real login needs: a helper that loops is cut off.
pub const MAX_STEPS: usize = 64;

/// Maps the helper's verdict. Only `Success` is success; only the
/// configured unenrolled policy yields `Ignore`.
pub fn code_for(verdict: &Verdict) -> ModuleCode {
    match verdict.outcome {
        Outcome::Success => ModuleCode::Success,
        Outcome::Denied => ModuleCode::AuthErr,
        Outcome::MaxTries => ModuleCode::MaxTries,
        Outcome::Ignore => ModuleCode::Ignore,
        Outcome::Unavailable => ModuleCode::AuthinfoUnavail,
        Outcome::Error => ModuleCode::SystemErr,
    }
}

fn code_for_frame_error(e: &FrameError) -> ModuleCode {
    match e {
        // The helper went away or stopped answering: its service is unavailable.
        FrameError::Closed | FrameError::Truncated | FrameError::TimedOut | FrameError::Io(_) => {
            ModuleCode::AuthinfoUnavail
        }
        // It answered nonsense: an internal error, never a success.
        FrameError::TooLarge(_)
        | FrameError::Empty
        | FrameError::Version { .. }
        | FrameError::Malformed(_) => ModuleCode::SystemErr,
    }
}

/// Runs one login conversation; returns the code, on failure a detail for
/// the log (never containing what the user typed), and whether the user
/// denied on a device.
pub fn run_login<C: Conversation, S: Channel>(
    io: &mut C,
    mut chan: S,
    items: &LoginItems,
    opts: &ModuleArgs,
) -> (ModuleCode, Option<String>, bool) {
    let fail = |e: FrameError| {
        (
            code_for_frame_error(&e),
            Some(format!("helper: {e}")),
            false,
        )
    };
    if let Err(e) = chan.set_timeout(opts.timeout) {
        return (
            ModuleCode::AuthinfoUnavail,
            Some(format!("socket: {e}")),
            false,
        );
    }
    let begin = Request::Begin(Begin {
        user: items.user.clone(),
        service: items.service.clone(),
        rhost: items.rhost.clone(),
        tty: items.tty.clone(),
        ruser: items.ruser.clone(),
        silent: items.silent,
        after_denial: items.after_denial,
    });
    if let Err(e) = frame::write_frame(&mut chan, &begin) {
        return fail(e);
    }
    let mut wait = Duration::ZERO;
    for _ in 0..MAX_STEPS {
        let read_timeout = (opts.timeout + wait).min(MAX_WAIT + opts.timeout);
        if let Err(e) = chan.set_timeout(read_timeout) {
            return (
                ModuleCode::AuthinfoUnavail,
                Some(format!("socket: {e}")),
                false,
            );
        }
        let response: Response = match frame::read_frame(&mut chan) {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        let step = match response {
            Response::Step(step) => step,
            Response::Verdict(v) => return (code_for(&v), None, v.denied_on_device),
            Response::Refused { message } => {
                return (
                    ModuleCode::PermDenied,
                    Some(format!("refused: {message}")),
                    false,
                );
            }
            Response::AdminReply(_) => {
                return (
                    ModuleCode::SystemErr,
                    Some("helper sent an admin reply".into()),
                    false,
                );
            }
        };
        wait = Duration::from_secs(u64::from(step.wait_secs()));
        let reply = match relay_step(io, &step) {
            Ok(reply) => reply,
            Err(ConvError) => {
                // Tell the helper so it can log it; the login fails either way.
                let _ = chan.set_timeout(opts.timeout);
                let _ =
                    frame::write_frame(&mut chan, &Request::Reply(Reply::ConversationFailed {}));
                return (
                    ModuleCode::ConvErr,
                    Some("conversation failed".into()),
                    false,
                );
            }
        };
        // The user may take their time at a prompt: the reply gets a
        // deadline of its own.
        if let Err(e) = chan.set_timeout(opts.timeout) {
            return fail(FrameError::Io(e));
        }
        if let Err(e) = frame::write_frame(&mut chan, &Request::Reply(reply)) {
            return fail(e);
        }
    }
    (
        ModuleCode::SystemErr,
        Some(format!("helper sent more than {MAX_STEPS} steps")),
        false,
    )
}

/// One handler per step kind. Text from the helper is sanitized once more
/// before it reaches the terminal.
fn relay_step<C: Conversation>(io: &mut C, step: &Step) -> Result<Reply, ConvError> {
    match step {
        Step::Info { text, .. } => {
            // A display failure of information text does not decide a login.
            let _ = io.info(&sanitize(text, true));
            Ok(Reply::Shown {})
        }
        Step::Error { text, .. } => {
            let _ = io.error(&sanitize(text, true));
            Ok(Reply::Shown {})
        }
        Step::Prompt { text, echo, .. } => {
            let mut answer = io.prompt(&sanitize(text, true), *echo)?;
            if answer.len() > MAX_ANSWER_LEN {
                let mut cut = MAX_ANSWER_LEN;
                while !answer.is_char_boundary(cut) {
                    cut -= 1;
                }
                answer.truncate(cut);
            }
            Ok(Reply::Answer { text: answer })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::path::PathBuf;
    use std::thread;

    #[derive(Default)]
    struct Scripted {
        answers: VecDeque<Result<&'static str, ConvError>>,
        shown: Vec<String>,
    }

    impl Conversation for Scripted {
        fn info(&mut self, text: &str) -> Result<(), ConvError> {
            self.shown.push(format!("info:{text}"));
            Ok(())
        }
        fn error(&mut self, text: &str) -> Result<(), ConvError> {
            self.shown.push(format!("error:{text}"));
            Ok(())
        }
        fn prompt(&mut self, text: &str, echo: bool) -> Result<Zeroizing<String>, ConvError> {
            self.shown.push(format!("prompt({echo}):{text}"));
            self.answers
                .pop_front()
                .unwrap_or(Err(ConvError))
                .map(|a| Zeroizing::new(a.to_owned()))
        }
    }

    impl Drop for Scripted {
        fn drop(&mut self) {
            if !thread::panicking() {
                assert!(
                    self.answers.is_empty(),
                    "unused answers: {:?}",
                    self.answers
                );
            }
        }
    }

    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().unwrap_or_else(|e| panic!("socketpair: {e}"))
    }

    fn joined(h: thread::JoinHandle<Vec<Request>>) -> Vec<Request> {
        h.join().unwrap_or_else(|_| panic!("fake helper panicked"))
    }

    fn opts() -> ModuleArgs {
        ModuleArgs {
            socket: PathBuf::from("/unused"),
            debug: false,
            timeout: Duration::from_millis(500),
        }
    }

    fn items() -> LoginItems {
        LoginItems {
            user: "alice".into(),
            service: "sudo".into(),
            rhost: None,
            tty: Some("pts/1".into()),
            ruser: None,
            silent: false,
            after_denial: false,
        }
    }

    /// A fake helper: checks Begin, then for each scripted response sends it
    /// and (for steps) records the reply it got.
    fn fake_helper(script: Vec<Vec<u8>>) -> (HelperStream, thread::JoinHandle<Vec<Request>>) {
        let (module_end, helper_end) = pair();
        // The fake writes with MSG_NOSIGNAL too: one test restores SIGPIPE's default.
        let mut helper_end = HelperStream::new(helper_end);
        let handle = thread::spawn(move || {
            let mut seen = Vec::new();
            if let Ok(begin) = frame::read_frame::<Request, _>(&mut helper_end) {
                seen.push(begin);
            }
            for raw in script {
                if helper_end.write_all(&raw).is_err() {
                    break;
                }
                match frame::read_frame::<Request, _>(&mut helper_end) {
                    Ok(r) => seen.push(r),
                    Err(_) => break,
                }
            }
            seen
        });
        (HelperStream::new(module_end), handle)
    }

    fn enc(r: &Response) -> Vec<u8> {
        frame::encode(r).map(|b| b.to_vec()).unwrap_or_default()
    }

    fn prompt(text: &str) -> Vec<u8> {
        enc(&Response::Step(Step::Prompt {
            text: text.into(),
            echo: false,
            wait_secs: 0,
        }))
    }

    fn verdict(outcome: Outcome) -> Vec<u8> {
        enc(&Response::Verdict(Verdict {
            outcome,
            denied_on_device: false,
        }))
    }

    #[test]
    fn relays_prompts_and_maps_success() {
        let (chan, h) = fake_helper(vec![
            enc(&Response::Step(Step::Info {
                text: "hello\x1b[31m".into(),
                wait_secs: 0,
            })),
            prompt("Recovery code: "),
            verdict(Outcome::Success),
        ]);
        let mut io = Scripted::default();
        io.answers.push_back(Ok("ABCD-EFGH"));
        let (code, _, _) = run_login(&mut io, chan, &items(), &opts());
        assert_eq!(code, ModuleCode::Success);
        assert_eq!(
            io.shown,
            ["info:hello?[31m", "prompt(false):Recovery code: "]
        );
        let seen = joined(h);
        assert!(
            matches!(&seen[0], Request::Begin(b) if b.user == "alice" && b.tty.as_deref() == Some("pts/1"))
        );
        assert_eq!(seen[1], Request::Reply(Reply::Shown {}));
        assert!(
            matches!(&seen[2], Request::Reply(Reply::Answer { text }) if text.as_str() == "ABCD-EFGH")
        );
    }

    #[test]
    fn overlong_answers_are_cut_to_fit_a_frame() {
        let (chan, h) = fake_helper(vec![prompt("Recovery code: "), verdict(Outcome::Denied)]);
        let mut io = Scripted::default();
        let huge: &'static str = Box::leak("é".repeat(40_000).into_boxed_str());
        io.answers.push_back(Ok(huge));
        let (code, _, _) = run_login(&mut io, chan, &items(), &opts());
        assert_eq!(code, ModuleCode::AuthErr);
        let seen = joined(h);
        assert!(
            matches!(&seen[1], Request::Reply(Reply::Answer { text }) if text.len() == MAX_ANSWER_LEN)
        );
    }

    #[test]
    fn every_outcome_maps_to_its_code() {
        for (o, c) in [
            (Outcome::Success, ModuleCode::Success),
            (Outcome::Denied, ModuleCode::AuthErr),
            (Outcome::MaxTries, ModuleCode::MaxTries),
            (Outcome::Ignore, ModuleCode::Ignore),
            (Outcome::Unavailable, ModuleCode::AuthinfoUnavail),
            (Outcome::Error, ModuleCode::SystemErr),
        ] {
            let (chan, h) = fake_helper(vec![verdict(o)]);
            let (code, _, _) = run_login(&mut Scripted::default(), chan, &items(), &opts());
            assert_eq!(code, c, "{o:?}");
            joined(h);
        }
    }

    #[test]
    fn conversation_failure_is_not_success() {
        let (chan, h) = fake_helper(vec![prompt("Recovery code: "), verdict(Outcome::Success)]);
        let mut io = Scripted::default();
        io.answers.push_back(Err(ConvError));
        let (code, _, _) = run_login(&mut io, chan, &items(), &opts());
        assert_eq!(code, ModuleCode::ConvErr);
        let seen = joined(h);
        assert_eq!(
            seen.last(),
            Some(&Request::Reply(Reply::ConversationFailed {}))
        );
    }

    #[test]
    fn garbage_oversize_and_hangup_fail_closed() {
        let mut oversize = ((pushmfa_protocol::MAX_FRAME_LEN + 1) as u32)
            .to_be_bytes()
            .to_vec();
        oversize.extend_from_slice(&[b'x'; 64]);
        let mut garbage = 5u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(b"\xff\xfe{{{");
        let mut truncated = prompt("Recovery code: ");
        truncated.truncate(10);
        let admin = enc(&Response::AdminReply(
            pushmfa_protocol::ipc::AdminReply::Done {
                message: "x".into(),
            },
        ));
        for (raw, want) in [
            (oversize, ModuleCode::SystemErr),
            (garbage, ModuleCode::SystemErr),
            (truncated, ModuleCode::AuthinfoUnavail),
            (admin, ModuleCode::SystemErr),
        ] {
            let (chan, h) = fake_helper(vec![raw]);
            let (code, _, _) = run_login(&mut Scripted::default(), chan, &items(), &opts());
            assert_eq!(code, want);
            drop(h);
        }
    }

    #[test]
    fn silent_helper_times_out() {
        let (module_end, helper_end) = pair();
        let start = std::time::Instant::now();
        let chan = HelperStream::new(module_end);
        let (code, detail, _) = run_login(&mut Scripted::default(), chan, &items(), &opts());
        assert_eq!(code, ModuleCode::AuthinfoUnavail);
        assert!(detail.unwrap_or_default().contains("timed out"));
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(helper_end);
    }

    /// Review finding: the timeout applied to each read, so a helper sending
    /// one byte every 1.5 s held a `timeout=2` login for 91 s.
    #[test]
    fn a_helper_dripping_bytes_cannot_stretch_the_timeout() {
        let (module_end, mut helper_end) = pair();
        let drip = thread::spawn(move || {
            let mut begin = [0u8; 4096];
            let _ = helper_end.read(&mut begin);
            let frame = enc(&Response::Step(Step::Info {
                text: "x".repeat(40),
                wait_secs: 0,
            }));
            for b in frame {
                if helper_end.write_all(&[b]).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        let start = std::time::Instant::now();
        let (code, detail, _) = run_login(
            &mut Scripted::default(),
            HelperStream::new(module_end),
            &items(),
            &opts(),
        );
        // opts() gives 500 ms; the drip would take about 7 s.
        assert_eq!(code, ModuleCode::AuthinfoUnavail, "{detail:?}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        let _ = drip.join();
    }

    /// A user slower at the prompt than the module's timeout still gets
    /// their answer through: the deadline is per message, not per login.
    #[test]
    fn a_slow_user_is_not_cut_off_by_the_message_deadline() {
        struct SlowUser;
        impl Conversation for SlowUser {
            fn info(&mut self, _: &str) -> Result<(), ConvError> {
                Ok(())
            }
            fn error(&mut self, _: &str) -> Result<(), ConvError> {
                Ok(())
            }
            fn prompt(&mut self, _: &str, _: bool) -> Result<Zeroizing<String>, ConvError> {
                thread::sleep(Duration::from_millis(800));
                Ok(Zeroizing::new("code".into()))
            }
        }
        let (chan, helper) = fake_helper(vec![
            enc(&Response::Step(Step::Prompt {
                text: "Recovery code: ".into(),
                echo: false,
                wait_secs: 0,
            })),
            enc(&Response::Verdict(Verdict {
                outcome: Outcome::Success,
                denied_on_device: false,
            })),
        ]);
        let (code, detail, _) = run_login(&mut SlowUser, chan, &items(), &opts());
        assert_eq!(code, ModuleCode::Success, "{detail:?}");
        let _ = helper.join();
    }

    #[test]
    fn writing_to_a_closed_helper_is_an_error_not_sigpipe() {
        // Restore the default SIGPIPE disposition, as in a host like sudo.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let (module_end, helper_end) = pair();
        drop(helper_end);
        let (code, _, _) = run_login(
            &mut Scripted::default(),
            HelperStream::new(module_end),
            &items(),
            &opts(),
        );
        assert_eq!(code, ModuleCode::AuthinfoUnavail);
    }

    #[test]
    fn endless_steps_are_cut_off() {
        let script = (0..MAX_STEPS + 1)
            .map(|_| {
                enc(&Response::Step(Step::Info {
                    text: "again".into(),
                    wait_secs: 0,
                }))
            })
            .collect();
        let (chan, h) = fake_helper(script);
        let (code, _, _) = run_login(&mut Scripted::default(), chan, &items(), &opts());
        assert_eq!(code, ModuleCode::SystemErr);
        drop(h);
    }
}
