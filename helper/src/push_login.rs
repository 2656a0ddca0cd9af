//! The push step of a login: issue a signed challenge, show the number,
//! wait for a signed answer from an enrolled device, decide.

use crate::auth::{End, Login};
use crate::push::{Blocked, Issued, check_answer};
use crate::server::Ctx;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_config::{FailMode, PushMode};
use pushmfa_protocol::ipc::Outcome;
use pushmfa_protocol::relay_api::{ChallengeResponse, PostChallenge};
use pushmfa_protocol::signed::{Challenge, Context, Decision, MAX_FIELD_LEN};
use pushmfa_protocol::text::sanitize;
use pushmfa_state::{Device, UserState};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

/// How the push step ended.
pub(crate) enum PushEnd {
    /// A verdict was sent.
    Decided,
    /// The user typed a recovery code at the push prompt.
    CodeTyped(Zeroizing<String>),
    /// No decision: say this, then ask for a recovery code.
    FallBack(String),
}

pub const MSG_NO_ANSWER: &str = "No answer from your phone.";
pub const MSG_UNREACHABLE: &str = "Your phone cannot be reached right now.";
pub const MSG_DENIED: &str = "Denied on your phone.";
pub const MSG_WRONG_NUMBER: &str = "The number entered on the phone did not match.";

/// What one round of waiting produced.
pub(crate) enum Waited {
    Accepted(Decision, String),
    WrongNumber(String),
    TimedOut,
    /// The user typed something at the prompt instead.
    Typed(Zeroizing<String>),
}

/// `prompt` for a service configured so, or when there is a remote host
/// (OpenSSH shows info text only with the next prompt); `wait` otherwise.
pub fn mode_for(
    modes: &std::collections::BTreeMap<String, PushMode>,
    service: &str,
    remote: bool,
) -> PushMode {
    match modes.get(service) {
        Some(m) => *m,
        None if remote => PushMode::Prompt,
        None => PushMode::Wait,
    }
}

pub(crate) fn field(s: Option<&str>) -> String {
    let s = sanitize(s.unwrap_or(""), false);
    let mut cut = s.len().min(MAX_FIELD_LEN);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_owned()
}

/// Fills a `push.*_text` template. Values come from the signed challenge,
/// already sanitized; the module sanitizes the whole text again.
fn render(template: &str, issued: &Issued, ttl: u32) -> String {
    let c = &issued.challenge;
    let rhost = if c.context.rhost.is_empty() {
        "this computer"
    } else {
        c.context.rhost.as_str()
    };
    template
        .replace("{{", "\u{0}")
        .replace("}}", "\u{1}")
        .replace("{number}", &format!("{:02}", issued.number))
        .replace("{ttl}", &ttl.to_string())
        .replace("{user}", &c.context.user)
        .replace("{service}", &c.context.service)
        .replace("{rhost}", rhost)
        .replace("{host}", &c.host_name)
        .replace('\u{0}', "{")
        .replace('\u{1}', "}")
}

fn random_number() -> u8 {
    loop {
        let mut b = [0u8; 1];
        if crate::codes::random_bytes(&mut b).is_err() {
            continue;
        }
        // 200 = 2 x 100: no modulo bias.
        if b[0] < 200 {
            return b[0] % 100;
        }
    }
}

/// A fresh challenge about `context`, with a random id and number.
pub(crate) fn issue(ctx: &Ctx, context: Context, ttl: u32) -> Result<Issued, String> {
    let mut id = [0u8; 32];
    crate::codes::random_bytes(&mut id).map_err(|e| e.to_string())?;
    let now = ctx.clock.now_unix();
    Ok(Issued {
        challenge: Challenge {
            id,
            host_id: ctx.host_key.id,
            host_name: field(Some(&crate::enroll::host_name(ctx))),
            context,
            issued_at: now,
            expires_at: now + u64::from(ttl),
        },
        number: random_number(),
        deadline: Instant::now() + Duration::from_secs(u64::from(ttl)),
        consumed: false,
    })
}

/// Posts the challenge to every device's channel and starts a long-poll
/// for each answer. Fails only if no device could be reached.
pub(crate) async fn post_everywhere(
    ctx: &Ctx,
    issued: &Issued,
    devices: &[Device],
    tx: &mpsc::Sender<ChallengeResponse>,
    pollers: &mut JoinSet<()>,
) -> Result<(), String> {
    let Some(relay) = ctx.relay.clone() else {
        return Err("no backend".into());
    };
    let encoded = issued.challenge.encode();
    let signature = ctx.host_key.sign(&encoded)?;
    let body = PostChallenge {
        id: B64.encode(issued.challenge.id),
        expires_in: issued.challenge.expires_at - issued.challenge.issued_at,
        challenge: B64.encode(&encoded),
        signature: B64.encode(&signature),
    };
    let mut posts = JoinSet::new();
    for d in devices {
        let (relay, body, d) = (relay.clone(), body.clone(), d.clone());
        posts.spawn(async move {
            (
                relay
                    .post_challenge(&d.channel_id, &d.channel_token, &body)
                    .await,
                d,
            )
        });
    }
    let mut reached = 0;
    let mut last_error = String::new();
    while let Some(joined) = posts.join_next().await {
        let Ok((result, d)) = joined else { continue };
        match result {
            Ok(()) => {
                reached += 1;
                let (relay, tx, id, deadline) =
                    (relay.clone(), tx.clone(), body.id.clone(), issued.deadline);
                pollers.spawn(async move {
                    // Long-poll until an answer or the deadline; one answer per channel.
                    loop {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return;
                        }
                        let wait = left
                            .min(Duration::from_secs(30))
                            .max(Duration::from_secs(1));
                        match relay
                            .wait_response(&d.channel_id, &d.channel_token, &id, wait)
                            .await
                        {
                            Ok(Some(r)) => {
                                let _ = tx.send(r).await;
                                return;
                            }
                            Ok(None) => continue,
                            Err(_) => {
                                // Relay hiccup: back off briefly rather than spin.
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                        }
                    }
                });
            }
            Err(e) => {
                ctx.log
                    .warning(&format!("push to device={} failed: {e}", d.name));
                last_error = e.to_string();
            }
        }
    }
    if reached == 0 {
        Err(last_error)
    } else {
        Ok(())
    }
}

/// Takes a challenge back from every device's channel when the login step
/// ends without it (a recovery code typed, an answer from another device,
/// the conversation aborted), so phones stop offering a request nobody
/// waits for. Runs on drop, so every exit path is covered; best effort.
pub(crate) struct Withdraw {
    relay: Option<crate::relay_client::RelayClient>,
    log: std::sync::Arc<crate::log::Logger>,
    user: String,
    id: String,
    /// (device name, channel, token) of every device still offering it.
    channels: Vec<(String, String, String)>,
}

impl Withdraw {
    pub(crate) fn new(ctx: &Ctx, issued: &Issued, devices: &[Device], decoy: bool) -> Withdraw {
        Withdraw {
            relay: if decoy { None } else { ctx.relay.clone() },
            log: ctx.log.clone(),
            user: issued.challenge.context.user.clone(),
            id: B64.encode(issued.challenge.id),
            channels: devices
                .iter()
                .map(|d| {
                    (
                        d.name.clone(),
                        d.channel_id.clone(),
                        d.channel_token.clone(),
                    )
                })
                .collect(),
        }
    }

    pub(crate) fn disarm(&mut self) {
        self.relay = None;
    }

    /// The relay forgot the challenge on that device's channel when it
    /// delivered the answer: nothing to take back there.
    pub(crate) fn answered_by(&mut self, device: &str) {
        self.channels.retain(|(name, _, _)| name != device);
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        let Some(relay) = self.relay.take() else {
            return;
        };
        if self.channels.is_empty() {
            return;
        }
        let (id, channels) = (
            std::mem::take(&mut self.id),
            std::mem::take(&mut self.channels),
        );
        let (log, user) = (self.log.clone(), std::mem::take(&mut self.user));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut failed = 0;
                for (_, channel, token) in &channels {
                    if relay.withdraw_challenge(channel, token, &id).await.is_err() {
                        failed += 1;
                    }
                }
                log.debug(&format!(
                    "push request withdrawn user={user} devices={} failed={failed}",
                    channels.len()
                ));
            });
        }
    }
}

/// Waits for the first acceptable answer until the challenge's deadline.
/// Bad answers are logged loudly and ignored: a relay can only delay.
pub(crate) async fn await_answer(
    ctx: &Ctx,
    issued: &mut Issued,
    devices: &[Device],
    rx: &mut mpsc::Receiver<ChallengeResponse>,
    user: &str,
    service: &str,
) -> Waited {
    loop {
        let left = issued.deadline.saturating_duration_since(Instant::now());
        let msg = match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(m)) => m,
            // Deadline, or every poller gave up (decoys have none: wait it out).
            Ok(None) => {
                tokio::time::sleep(issued.deadline.saturating_duration_since(Instant::now())).await;
                return Waited::TimedOut;
            }
            Err(_) => return Waited::TimedOut,
        };
        let (Ok(response), Ok(signature)) = (B64.decode(&msg.response), B64.decode(&msg.signature))
        else {
            ctx.log.warning("push answer rejected: not base64");
            continue;
        };
        match check_answer(issued, devices, &response, &signature, Instant::now()) {
            Ok(a) => return Waited::Accepted(a.decision, a.device),
            Err(crate::push::Rejected::WrongNumber) => {
                return Waited::WrongNumber("?".into());
            }
            Err(why) => {
                ctx.log.error(&format!(
                    "push answer REJECTED user={} service={}: {} (a relay or device sent a bad answer; still waiting)",
                    user,
                    service,
                    why.as_str()
                ));
            }
        }
    }
}

impl Login<'_> {
    pub(crate) async fn push(&mut self, state: &UserState) -> Result<PushEnd, End> {
        // `ctx` is a shared reference of its own: borrowing the config through
        // it (not through `self`) avoids cloning it on every login.
        let ctx = self.ctx;
        let cfg = &ctx.cfg.push;
        let devices = &state.devices;
        // Users without devices (unknown, unenrolled, codes only) get the same
        // prompt with a decoy number and no push, so prompts reveal nothing.
        let decoy = devices.is_empty();
        let now = self.ctx.clock.now_unix();
        let mut _slot = None;
        // The sshd connection of this caller, if any (read from /proc once).
        let ssh_conn = if decoy {
            None
        } else {
            self.peer.pid.and_then(crate::peer::sshd_connection)
        };
        if !decoy {
            // The application retries after a failure: sudo on the same PAM
            // handle (the module tells us), OpenSSH in a new child of the same
            // connection. A denial on the phone is final for that attempt.
            let retry_on_ssh = ssh_conn.is_some_and(|c| {
                self.ctx
                    .push
                    .denied_on_connection(&self.begin.user, c, Instant::now())
            });
            if self.begin.after_denial || retry_on_ssh {
                self.say_error(MSG_DENIED).await?;
                self.finish_with(
                    Outcome::Denied,
                    "retry after a denial on the phone: not pushed again",
                    true,
                )
                .await;
                return Ok(PushEnd::Decided);
            }
            if state.push_muted_until.is_some_and(|t| t > now) {
                self.ctx.log.warning(&format!(
                    "push skipped user={}: muted after a fraud report",
                    self.begin.user
                ));
                return Ok(PushEnd::FallBack(
                    "Approval requests to this account are paused after a \"not me\" report."
                        .into(),
                ));
            }
            let window = Duration::from_secs(u64::from(cfg.rate_limit_window_secs));
            match self.ctx.push.start(
                &self.begin.user,
                cfg.rate_limit_count as usize,
                window,
                Instant::now(),
            ) {
                Ok(slot) => _slot = Some(slot),
                Err(Blocked::Outstanding) => {
                    return Ok(PushEnd::FallBack(
                        "Another sign-in is already waiting for your phone.".into(),
                    ));
                }
                Err(Blocked::RateLimited) => {
                    self.ctx
                        .log
                        .warning(&format!("push rate limit reached user={}", self.begin.user));
                    return Ok(PushEnd::FallBack(
                        "Too many approval requests recently.".into(),
                    ));
                }
            }
        }
        // Under PAM_SILENT (sudo's default) an info line would never be
        // shown: the number must then be in a prompt.
        let mode = if self.begin.silent {
            PushMode::Prompt
        } else {
            mode_for(&cfg.modes, &self.begin.service, self.begin.rhost.is_some())
        };
        for round in 0..=cfg.resend {
            if round > 0 && !decoy {
                let window = Duration::from_secs(u64::from(cfg.rate_limit_window_secs));
                if !self.ctx.push.count_resend(
                    &self.begin.user,
                    cfg.rate_limit_count as usize,
                    window,
                    Instant::now(),
                ) {
                    break;
                }
            }
            let mut issued = match self.issue(cfg.ttl_secs) {
                Ok(i) => i,
                Err(e) => {
                    self.finish(Outcome::Error, &format!("cannot sign a challenge: {e}"))
                        .await;
                    return Ok(PushEnd::Decided);
                }
            };
            let (tx, rx) = mpsc::channel(16);
            let mut pollers = JoinSet::new();
            if !decoy {
                match self
                    .post_everywhere(&issued, devices, &tx, &mut pollers)
                    .await
                {
                    Ok(()) => {}
                    Err(why) => return self.unreachable(&why).await,
                }
            }
            drop(tx);
            let mut withdraw = Withdraw::new(self.ctx, &issued, devices, decoy);
            let waited = self.show_and_wait(mode, &mut issued, devices, rx).await?;
            pollers.abort_all();
            match &waited {
                // Expired at the relay too: nothing to take back.
                Waited::TimedOut => withdraw.disarm(),
                Waited::Accepted(_, device) => withdraw.answered_by(device),
                Waited::WrongNumber(_) | Waited::Typed(_) => {}
            }
            match waited {
                Waited::Accepted(Decision::Approve, device) => {
                    self.finish(Outcome::Success, &format!("method=push device={device}"))
                        .await;
                    return Ok(PushEnd::Decided);
                }
                Waited::Accepted(Decision::Deny, device) => {
                    self.say_error(MSG_DENIED).await?;
                    if let Some(c) = ssh_conn {
                        self.ctx
                            .push
                            .note_denial(&self.begin.user, c, Instant::now());
                    }
                    self.finish_with(Outcome::Denied, &format!("denied on device={device}"), true)
                        .await;
                    return Ok(PushEnd::Decided);
                }
                Waited::Accepted(Decision::Fraud, device) => return self.fraud(&device).await,
                Waited::WrongNumber(device) => {
                    self.say_error(MSG_WRONG_NUMBER).await?;
                    self.finish(Outcome::Denied, &format!("wrong number on device={device}"))
                        .await;
                    return Ok(PushEnd::Decided);
                }
                Waited::Typed(code) => return Ok(PushEnd::CodeTyped(code)),
                Waited::TimedOut => {}
            }
        }
        Ok(PushEnd::FallBack(MSG_NO_ANSWER.into()))
    }

    /// A fresh challenge for this login.
    fn issue(&self, ttl: u32) -> Result<Issued, String> {
        let b = &self.begin;
        issue(
            self.ctx,
            Context {
                user: field(Some(&b.user)),
                service: field(Some(&b.service)),
                rhost: field(b.rhost.as_deref()),
                tty: field(b.tty.as_deref()),
            },
            ttl,
        )
    }

    async fn post_everywhere(
        &self,
        issued: &Issued,
        devices: &[Device],
        tx: &mpsc::Sender<ChallengeResponse>,
        pollers: &mut JoinSet<()>,
    ) -> Result<(), String> {
        post_everywhere(self.ctx, issued, devices, tx, pollers).await
    }

    /// Shows the number (before any waiting) and waits for a decision.
    async fn show_and_wait(
        &mut self,
        mode: PushMode,
        issued: &mut Issued,
        devices: &[Device],
        mut rx: mpsc::Receiver<ChallengeResponse>,
    ) -> Result<Waited, End> {
        let ttl = issued
            .deadline
            .saturating_duration_since(Instant::now())
            .as_secs() as u32;
        match mode {
            PushMode::Prompt => {
                let text = render(&self.ctx.cfg.push.prompt_text, issued, ttl);
                let answer = self.ask_then_wait(&text, false, ttl).await?;
                if !answer.trim().is_empty() {
                    return Ok(Waited::Typed(answer));
                }
            }
            PushMode::Wait => {
                let text = render(&self.ctx.cfg.push.info_text, issued, ttl);
                self.say_info(&text, ttl).await?;
            }
        }
        Ok(await_answer(
            self.ctx,
            issued,
            devices,
            &mut rx,
            &self.begin.user,
            &self.begin.service,
        )
        .await)
    }

    async fn unreachable(&mut self, why: &str) -> Result<PushEnd, End> {
        if self.ctx.cfg.policy.failmode == FailMode::Safe {
            self.ctx.log.error(&format!(
                "FAILMODE SAFE: push could not be delivered ({why}); letting user={} service={} in WITHOUT a second factor",
                self.begin.user, self.begin.service
            ));
            self.finish(Outcome::Success, "failmode=safe, backend unreachable")
                .await;
            return Ok(PushEnd::Decided);
        }
        self.ctx.log.warning(&format!(
            "push backend unreachable ({why}); asking for a recovery code"
        ));
        Ok(PushEnd::FallBack(MSG_UNREACHABLE.into()))
    }

    async fn fraud(&mut self, device: &str) -> Result<PushEnd, End> {
        let mute = u64::from(self.ctx.cfg.push.fraud_mute_secs);
        let until = self.ctx.clock.now_unix() + mute;
        self.ctx.log.error(&format!(
            "FRAUD REPORTED user={} service={} rhost={} device={device}: someone else tried to sign in; pushes muted for {mute} s",
            self.begin.user,
            self.begin.service,
            self.begin.rhost.as_deref().unwrap_or("-"),
        ));
        if let Some(user) = self.user.clone() {
            if let Err(e) = crate::admin::with_state(self.ctx, &user, move |s| {
                s.push_muted_until = Some(until);
                Ok(())
            })
            .await
            {
                self.ctx
                    .log
                    .error(&format!("could not persist the push mute: {e}"));
            }
        }
        self.say_error(&format!(
            "Reported as not you. Approval requests are paused for {} minutes; tell your administrator.",
            mute.div_ceil(60)
        ))
        .await?;
        self.finish(
            Outcome::Denied,
            &format!("fraud reported on device={device}"),
        )
        .await;
        Ok(PushEnd::Decided)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn modes_default_by_remote_host() {
        let mut m = BTreeMap::new();
        assert_eq!(mode_for(&m, "sshd", true), PushMode::Prompt);
        assert_eq!(mode_for(&m, "sudo", false), PushMode::Wait);
        m.insert("sudo".into(), PushMode::Prompt);
        assert_eq!(mode_for(&m, "sudo", false), PushMode::Prompt);
    }

    #[test]
    fn templates_fill_every_placeholder() {
        let issued = Issued {
            challenge: Challenge {
                id: [0; 32],
                host_id: [0; 32],
                host_name: "web-1".into(),
                context: Context {
                    user: "alice".into(),
                    service: "sshd".into(),
                    rhost: String::new(),
                    tty: String::new(),
                },
                issued_at: 0,
                expires_at: 60,
            },
            number: 7,
            deadline: Instant::now(),
            consumed: false,
        };
        let t = render(
            "{host}: {user} via {service} from {rhost}: {number} ({ttl} s) {{literal}}",
            &issued,
            42,
        );
        assert_eq!(
            t,
            "web-1: alice via sshd from this computer: 07 (42 s) {literal}"
        );
    }

    #[test]
    fn numbers_are_two_digits_and_fields_are_clean() {
        for _ in 0..1000 {
            assert!(random_number() < 100);
        }
        assert_eq!(field(Some("a\x1b[2Jb")), "a?[2Jb");
        assert_eq!(field(Some(&"é".repeat(200))).len(), 254);
        assert_eq!(field(None), "");
    }
}
