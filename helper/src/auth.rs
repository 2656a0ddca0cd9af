//! The login conversation: Begin -> prompts -> Verdict.
//!
//! Unknown, unenrolled and enrolled users see the same prompts in the same
//! order, and every code typed costs one Argon2id hash whoever the user is.
//! Only `policy.unenrolled = "ignore"` answers differently (PAM_IGNORE, no
//! prompt), which is what that setting is for.

use crate::conn::Conn;
use crate::peer::{self, Peer};
use crate::push_login::PushEnd;
use crate::recovery::{self, Attempt, RecoveryError};
use crate::server::Ctx;
use pushmfa_config::Unenrolled;
use pushmfa_protocol::ipc::{Begin, Outcome, Reply, Response, Step, Verdict};
use pushmfa_protocol::text::sanitize;
use pushmfa_state::{UserName, UserState};
use std::time::Duration;
use zeroize::Zeroizing;

pub const CODE_PROMPT: &str = "Recovery code: ";
pub const MSG_WRONG: &str = "That recovery code is not valid.";
pub const MSG_NOT_A_CODE: &str =
    "That is not a recovery code (they look like XXXX-XXXX-XXXX-XXXX).";
pub const MSG_TOO_MANY: &str = "Too many wrong recovery codes.";
pub const MSG_LOCKED: &str =
    "Recovery codes are locked after too many wrong attempts. Ask an administrator to unlock them.";

/// How long a client may take to acknowledge an info or error line.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a login ended early, for the log; the verdict is chosen by the caller.
pub(crate) enum End {
    /// The client went away, timed out or sent something out of order.
    Client(String),
}

pub(crate) struct Login<'a> {
    pub(crate) ctx: &'a Ctx,
    pub(crate) conn: &'a mut Conn,
    pub(crate) peer: Peer,
    pub(crate) begin: Begin,
    /// None for a name that cannot exist in the store (treated as unknown).
    pub(crate) user: Option<UserName>,
    /// Under PAM_SILENT, error lines waiting to be shown with the next prompt.
    held: Vec<String>,
}

pub async fn run(ctx: &Ctx, conn: &mut Conn, peer: Peer, begin: Begin) {
    if !peer::may_authenticate(&peer, &begin.user) {
        ctx.log.warning(&format!(
            "refused: uid {} asked to authenticate user={} service={}; only root may authenticate other users",
            peer.uid, begin.user, begin.service
        ));
        let _ = conn
            .send(&Response::Refused {
                message: "only root may authenticate another user".into(),
            })
            .await;
        return;
    }
    let user = UserName::parse(&begin.user);
    if user.is_none() {
        ctx.log.warning(&format!(
            "user name {:?} cannot be enrolled (unsupported characters); treating it as unknown",
            begin.user
        ));
    }
    let mut login = Login {
        ctx,
        conn,
        peer,
        begin,
        user,
        held: Vec::new(),
    };
    login.run().await;
}

impl Login<'_> {
    async fn run(&mut self) {
        let state = match self.load_state().await {
            Ok(s) => s,
            Err(e) => {
                return self
                    .finish(Outcome::Unavailable, &format!("state: {e}"))
                    .await;
            }
        };
        let enrolled = state.enrolled();
        if !enrolled && self.ctx.cfg.policy.unenrolled == Unenrolled::Ignore {
            return self
                .finish(Outcome::Ignore, "not enrolled (policy: ignore)")
                .await;
        }
        let mut first_code = None;
        if self.ctx.relay.is_some() {
            match self.push(&state).await {
                Ok(PushEnd::Decided) => return,
                Ok(PushEnd::CodeTyped(code)) => first_code = Some(code),
                Ok(PushEnd::FallBack(msg)) => {
                    if let Err(End::Client(why)) = self.say_error(&msg).await {
                        return self.finish(Outcome::Denied, &why).await;
                    }
                }
                Err(End::Client(why)) => return self.finish(Outcome::Denied, &why).await,
            }
        }
        if let Err(End::Client(why)) = self.recovery_prompts(enrolled, first_code).await {
            self.finish(Outcome::Denied, &why).await;
        }
    }

    async fn load_state(&self) -> Result<UserState, RecoveryError> {
        let Some(user) = self.user.clone() else {
            return Ok(UserState::new());
        };
        let store = self.ctx.store.clone();
        let loaded = tokio::task::spawn_blocking(move || store.load(&user))
            .await
            .map_err(|e| RecoveryError::Internal(e.to_string()))??;
        Ok(loaded.unwrap_or_else(UserState::new))
    }

    /// Up to `max_tries` code prompts (the first answer may already have been
    /// typed at the push prompt); ends the login with a verdict unless the
    /// client went away.
    async fn recovery_prompts(
        &mut self,
        enrolled: bool,
        mut first: Option<Zeroizing<String>>,
    ) -> Result<(), End> {
        let max_tries = self.ctx.cfg.recovery.max_tries;
        for _ in 0..max_tries {
            let answer = match first.take() {
                Some(a) => a,
                None => self.ask(CODE_PROMPT, false).await?,
            };
            let code = match crate::codes::normalize(&answer) {
                Ok(c) => c,
                Err(_) => {
                    self.say_error(MSG_NOT_A_CODE).await?;
                    continue;
                }
            };
            match self.check(code).await {
                Ok(Attempt::Accepted { codes_left }) => {
                    let detail = format!("method=recovery-code codes_left={codes_left}");
                    self.finish(Outcome::Success, &detail).await;
                    return Ok(());
                }
                Ok(Attempt::Wrong) | Ok(Attempt::NotEnrolled) => {
                    self.say_error(MSG_WRONG).await?;
                }
                Ok(Attempt::Backoff { retry_after }) => {
                    let msg = format!(
                        "Too many wrong recovery codes: wait {retry_after} seconds, then try again."
                    );
                    self.say_error(&msg).await?;
                    let detail = format!("recovery-code backoff, retry after {retry_after}s");
                    self.finish(Outcome::Denied, &detail).await;
                    return Ok(());
                }
                Ok(Attempt::LockedOut) => {
                    self.say_error(MSG_LOCKED).await?;
                    self.finish(Outcome::Denied, "recovery codes locked out")
                        .await;
                    return Ok(());
                }
                Err(e) => {
                    self.finish(Outcome::Unavailable, &format!("recovery code check: {e}"))
                        .await;
                    return Ok(());
                }
            }
        }
        self.say_error(MSG_TOO_MANY).await?;
        let why = if enrolled {
            "wrong recovery codes"
        } else {
            "not enrolled"
        };
        self.finish(Outcome::MaxTries, why).await;
        Ok(())
    }

    /// One attempt on a blocking thread, at most `max_parallel_hashes` at once.
    async fn check(&self, code: Zeroizing<String>) -> Result<Attempt, RecoveryError> {
        let store = self.ctx.store.clone();
        let user = self.user.clone();
        let cfg = self.ctx.cfg.recovery.clone();
        let now = self.ctx.clock.now_unix();
        self.ctx
            .hashers
            .run(move |scratch| recovery::attempt(&store, user.as_ref(), &code, &cfg, now, scratch))
            .await
            .map_err(RecoveryError::Internal)?
    }

    async fn ask(&mut self, text: &str, echo: bool) -> Result<Zeroizing<String>, End> {
        self.ask_then_wait(text, echo, 0).await
    }

    /// A prompt after whose answer the helper may take `wait_secs` (a push wait).
    pub(crate) async fn ask_then_wait(
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
            Reply::ConversationFailed => Err(End::Client("conversation failed".into())),
            Reply::Shown => Err(End::Client("client skipped a prompt".into())),
        }
    }

    pub(crate) async fn say_info(&mut self, text: &str, wait_secs: u32) -> Result<(), End> {
        let step = Step::Info {
            text: text.into(),
            wait_secs,
        };
        match self.exchange(step, ACK_TIMEOUT).await? {
            Reply::Shown => Ok(()),
            _ => Err(End::Client("client answered an info line".into())),
        }
    }

    pub(crate) async fn say_error(&mut self, text: &str) -> Result<(), End> {
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
            Reply::Shown => Ok(()),
            _ => Err(End::Client("client answered an error line".into())),
        }
    }

    async fn exchange(&mut self, step: Step, timeout: Duration) -> Result<Reply, End> {
        self.conn
            .send(&Response::Step(step))
            .await
            .map_err(|e| End::Client(format!("client: {e}")))?;
        match self
            .conn
            .recv::<pushmfa_protocol::ipc::Request>(timeout)
            .await
        {
            Ok(pushmfa_protocol::ipc::Request::Reply(r)) => Ok(r),
            Ok(_) => Err(End::Client("client sent a request out of order".into())),
            Err(e) => Err(End::Client(format!("client: {e}"))),
        }
    }

    /// Logs the decision (never a secret) and sends the verdict.
    pub(crate) async fn finish(&mut self, outcome: Outcome, detail: &str) {
        self.finish_with(outcome, detail, false).await
    }

    /// [`Login::finish`], marking a denial made on a device (so the module
    /// keeps retries in this PAM transaction from pushing again).
    pub(crate) async fn finish_with(
        &mut self,
        outcome: Outcome,
        detail: &str,
        denied_on_device: bool,
    ) {
        let b = &self.begin;
        let line = format!(
            "login user={} service={} rhost={} tty={} ruser={} peer_uid={} peer_pid={} outcome={} ({})",
            b.user,
            b.service,
            b.rhost.as_deref().unwrap_or("-"),
            b.tty.as_deref().unwrap_or("-"),
            b.ruser.as_deref().unwrap_or("-"),
            self.peer.uid,
            self.peer.pid.map_or("-".into(), |p| p.to_string()),
            outcome_name(outcome),
            sanitize(detail, false),
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
    }
}

pub fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Denied => "denied",
        Outcome::MaxTries => "maxtries",
        Outcome::Ignore => "ignore",
        Outcome::Unavailable => "unavailable",
        Outcome::Error => "error",
    }
}
