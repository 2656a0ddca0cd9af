//! One login's conversation with the PAM module: prompts, info and error
//! lines, and the verdict with its log line. Below the login steps, which
//! only talk to the user through it.

use crate::conn::Conn;
use crate::ctx::Ctx;
use crate::log::Q;
use crate::peer::Peer;
use crate::user_state;
use pushmfa_protocol::ipc::{Begin, Outcome, Reply, Request, Response, Step, Verdict};
use pushmfa_protocol::text::sanitize;
use pushmfa_state::{LastSuccess, UserName};
use std::time::Duration;
use zeroize::Zeroizing;

/// How long a client may take to acknowledge an info or error line.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a login ended early, for the log; the verdict is chosen by the caller.
pub(super) enum End {
    /// The client went away, timed out or sent something out of order.
    Client(String),
}

/// The login in progress on one connection.
pub(super) struct Conversation<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) conn: &'a mut Conn,
    pub(super) peer: Peer,
    pub(super) begin: Begin,
    /// None for a name that cannot exist in the store (treated as unknown).
    pub(super) user: Option<UserName>,
    /// Under PAM_SILENT, error lines waiting to be shown with the next prompt.
    pub(super) held: Vec<String>,
    /// The scoping rule that decided whether this login needs the second
    /// factor (`[policy]`), for the decision's log line.
    pub(super) rule: &'static str,
}

impl Conversation<'_> {
    pub(super) async fn ask(&mut self, text: &str, echo: bool) -> Result<Zeroizing<String>, End> {
        self.ask_then_wait(text, echo, 0).await
    }

    /// A prompt after whose answer the helper may take `wait_secs` (a push wait).
    pub(super) async fn ask_then_wait(
        &mut self,
        text: &str,
        echo: bool,
        wait_secs: u32,
    ) -> Result<Zeroizing<String>, End> {
        // What a silent application would not show goes before the prompt
        // (as sshd does with held-back messages).
        let text = if self.held.is_empty() {
            text.to_owned()
        } else {
            format!("{} {text}", std::mem::take(&mut self.held).join(" "))
        };
        let step = Step::Prompt {
            text,
            echo,
            wait_secs,
        };
        let timeout = Duration::from_secs(u64::from(self.ctx.cfg.helper.prompt_timeout_secs));
        match self.exchange(step, timeout).await? {
            Reply::Answer { text } => Ok(text),
            Reply::ConversationFailed {} => Err(End::Client("conversation failed".into())),
            Reply::Shown {} => Err(End::Client("client skipped a prompt".into())),
        }
    }

    /// Lines held back under PAM_SILENT, as one line to put before a
    /// multi-line prompt (empty when there are none).
    pub(super) fn take_held_line(&mut self) -> String {
        let held = std::mem::take(&mut self.held);
        if held.is_empty() {
            String::new()
        } else {
            format!("{}\n", held.join(" "))
        }
    }

    pub(super) async fn say_info(&mut self, text: &str, wait_secs: u32) -> Result<(), End> {
        let step = Step::Info {
            text: text.into(),
            wait_secs,
        };
        match self.exchange(step, ACK_TIMEOUT).await? {
            Reply::Shown {} => Ok(()),
            _ => Err(End::Client("client answered an info line".into())),
        }
    }

    pub(super) async fn say_error(&mut self, text: &str) -> Result<(), End> {
        if self.begin.silent {
            // PAM_SILENT (sudo's default): the application would drop this
            // line, so it is shown with the next prompt, if there is one.
            self.held.push(text.to_owned());
            return Ok(());
        }
        let step = Step::Error {
            text: text.into(),
            wait_secs: 0,
        };
        match self.exchange(step, ACK_TIMEOUT).await? {
            Reply::Shown {} => Ok(()),
            _ => Err(End::Client("client answered an error line".into())),
        }
    }

    async fn exchange(&mut self, step: Step, timeout: Duration) -> Result<Reply, End> {
        self.conn
            .send(&Response::Step(step))
            .await
            .map_err(|e| End::Client(format!("client: {e}")))?;
        match self.conn.recv::<Request>(timeout).await {
            Ok(Request::Reply(r)) => Ok(r),
            Ok(_) => Err(End::Client("client sent a request out of order".into())),
            Err(e) => Err(End::Client(format!("client: {e}"))),
        }
    }

    /// Logs the decision (never a secret) and sends the verdict.
    pub(super) async fn finish(&mut self, outcome: Outcome, detail: &str) {
        self.finish_with(outcome, detail, false).await
    }

    /// [`Conversation::finish`], marking a denial made on a device (so the module
    /// keeps retries in this PAM transaction from pushing again).
    pub(super) async fn finish_with(
        &mut self,
        outcome: Outcome,
        detail: &str,
        denied_on_device: bool,
    ) {
        let b = &self.begin;
        let line = format!(
            "login user={} service={} rhost={} tty={} ruser={} peer_uid={} peer_pid={} outcome={} ({}) rule={}",
            Q(&b.user),
            Q(&b.service),
            opt(b.rhost.as_deref()),
            opt(b.tty.as_deref()),
            opt(b.ruser.as_deref()),
            self.peer.uid,
            self.peer.pid.map_or("-".into(), |p| p.to_string()),
            outcome_name(outcome),
            sanitize(detail, false),
            self.rule,
        );
        match outcome {
            Outcome::Success | Outcome::Ignore => self.ctx.log.info(&line),
            Outcome::Denied | Outcome::MaxTries => self.ctx.log.warning(&line),
            Outcome::Unavailable | Outcome::Error => self.ctx.log.error(&line),
        }
        let _ = self
            .conn
            .send(&Response::Verdict(Verdict {
                outcome,
                denied_on_device,
            }))
            .await;
        if outcome == Outcome::Success {
            // After the verdict, so the login does not wait for the write.
            self.note_success(detail).await;
        }
    }

    /// Keeps how and when the user last passed, for `pushmfa report`.
    async fn note_success(&self, detail: &str) {
        let Some(user) = &self.user else {
            return;
        };
        let method = detail
            .split_whitespace()
            .find_map(|w| w.strip_prefix("method="))
            .unwrap_or("failmode-safe")
            .to_owned();
        let at = self.ctx.clock.now_unix();
        let noted = user_state::with_state(self.ctx, user, move |s| {
            s.last_success = Some(LastSuccess { method, at });
            Ok(())
        })
        .await;
        if let Err(e) = noted {
            self.ctx.log.error(&format!(
                "could not note the last login of user={}: {e}",
                Q(user.as_str())
            ));
        }
    }
}

/// A PAM item for a log line: quoted when set, `-` when not.
fn opt(v: Option<&str>) -> String {
    v.map_or("-".into(), |v| Q(v).to_string())
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Denied => "denied",
        Outcome::MaxTries => "maxtries",
        Outcome::Ignore => "ignore",
        Outcome::Unavailable => "unavailable",
        Outcome::Error => "error",
    }
}
