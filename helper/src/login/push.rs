//! The push step of a login: issue a signed challenge, show the number,
//! wait for a signed answer from an enrolled device, decide. Users without
//! devices get the same prompts with a decoy number and no push.

use super::conversation::{Conversation, End};
use crate::log::Q;
use crate::peer;
use crate::push::challenge::{self, Issued};
use crate::push::delivery::{Undelivered, Waited, Withdraw, await_answer, post_everywhere};
use crate::push::mode::effective_mode;
use crate::push_book::Blocked;
use crate::user_state;
use pushmfa_config::{FailMode, PushMode};
use pushmfa_protocol::ipc::Outcome;
use pushmfa_protocol::signed::{Decision, MAX_FIELD_LEN};
use pushmfa_state::{Device, UserState};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

/// How the push step ended.
pub(super) enum PushEnd {
    /// A verdict was sent.
    Decided,
    /// The user typed a recovery code at the push prompt.
    CodeTyped(Zeroizing<String>),
    /// No decision: say this, then ask for a recovery code.
    FallBack(String),
    /// Push cannot be used (no relay took the request): say this, then
    /// offer offline approval.
    Unusable(String),
}

/// `{offline}` in a prompt, where offline approval is allowed.
pub const OFFLINE_HINT: &str = ", or o if your phone is offline";
pub const MSG_NO_ANSWER: &str = "No answer from your phone.";
pub const MSG_UNREACHABLE: &str = "Your phone cannot be reached right now.";
pub const MSG_DENIED: &str = "Denied on your phone.";
pub const MSG_WRONG_NUMBER: &str = "The number entered on the phone did not match.";
pub const MSG_NEEDS_VERIFICATION: &str = "This sign-in must be approved with your phone's screen lock or fingerprint, and none of your devices can do that (a command-line authenticator cannot). Enroll the web app on a phone with a screen lock.";

/// Fills a `push.*_text` template. Values come from the signed challenge,
/// already sanitized; the module sanitizes the whole text again.
fn render(template: &str, issued: &Issued, ttl: u32, offline: bool) -> String {
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
        .replace("{offline}", if offline { OFFLINE_HINT } else { "" })
        .replace('\u{0}', "{")
        .replace('\u{1}', "}")
}

pub(super) async fn push_step(
    conv: &mut Conversation<'_>,
    state: &UserState,
) -> Result<PushEnd, End> {
    // `ctx` is a shared reference of its own: borrowing the config through
    // it (not through `conv`) avoids cloning it on every login.
    let ctx = conv.ctx;
    let cfg = &ctx.cfg.push;
    let needs_uv = cfg.user_verification_for(&conv.begin.service);
    let askable = super::devices::askable(conv, &state.devices, needs_uv);
    if needs_uv
        && askable.is_empty()
        && state
            .devices
            .iter()
            .any(|d| d.protocol() >= cfg.min_protocol)
    {
        // Devices, but none that can verify its user: say why.
        return Ok(PushEnd::FallBack(MSG_NEEDS_VERIFICATION.into()));
    }
    let devices: &[Device] = &askable;
    // Users without devices (unknown, unenrolled, codes only) get the same
    // prompt with a decoy number and no push, so prompts reveal nothing.
    let decoy = devices.is_empty();
    let now = conv.ctx.clock.now_unix();
    let mut _slot = None;
    // The sshd connection of this caller, if any (read from /proc once).
    let ssh_conn = if decoy {
        None
    } else {
        conv.peer.pid.and_then(peer::sshd_connection)
    };
    if !decoy {
        // The application retries after a failure: sudo on the same PAM
        // handle (the module tells us), OpenSSH in a new child of the same
        // connection. A denial on the phone is final for that attempt.
        let retry_on_ssh = ssh_conn.is_some_and(|c| {
            conv.ctx
                .push
                .denied_on_connection(&conv.begin.user, c, Instant::now())
        });
        if conv.begin.after_denial || retry_on_ssh {
            conv.say_error(MSG_DENIED).await?;
            conv.finish_with(
                Outcome::Denied,
                "retry after a denial on the phone: not pushed again",
                true,
            )
            .await;
            return Ok(PushEnd::Decided);
        }
        if state.push_muted_until.is_some_and(|t| t > now) {
            conv.ctx.log.warning(&format!(
                "push skipped user={}: muted after a fraud report",
                Q(&conv.begin.user)
            ));
            return Ok(PushEnd::FallBack(
                "Approval requests to this account are paused after a \"not me\" report.".into(),
            ));
        }
        let window = Duration::from_secs(u64::from(cfg.rate_limit_window_secs));
        match conv.ctx.push.start(
            &conv.begin.user,
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
                conv.ctx
                    .log
                    .warning(&format!("push rate limit reached user={}", conv.begin.user));
                return Ok(PushEnd::FallBack(
                    "Too many approval requests recently.".into(),
                ));
            }
        }
    }
    // Under PAM_SILENT (sudo's default) an info line would never be
    // shown: the number must then be in a prompt.
    let b = &conv.begin;
    let mode = effective_mode(&conv.ctx.cfg, &b.service, b.rhost.is_some(), b.silent);
    for round in 0..=cfg.resend {
        if round > 0 && !decoy {
            let window = Duration::from_secs(u64::from(cfg.rate_limit_window_secs));
            if !conv.ctx.push.count_resend(
                &conv.begin.user,
                cfg.rate_limit_count as usize,
                window,
                Instant::now(),
            ) {
                break;
            }
        }
        let mut issued = match issue(conv, cfg.ttl_secs) {
            Ok(i) => i,
            Err(e) => {
                conv.finish(Outcome::Error, &format!("cannot sign a challenge: {e}"))
                    .await;
                return Ok(PushEnd::Decided);
            }
        };
        issued.user_verification = needs_uv;
        let (tx, mut rx) = mpsc::channel(16);
        let mut pollers = JoinSet::new();
        // Taken back on every exit (client gone, code typed, decided).
        let mut withdraw = Withdraw::new(conv.ctx, &issued, devices, decoy);
        let screen = Screen::new(conv, mode, &issued);
        // The number is the helper's, not the relay's: it is shown while
        // the posts are in flight, so how soon the prompt appears says
        // nothing about whether the user has a device (decoys post
        // nothing), and logins start a relay round trip sooner.
        let (ctx, user, service) = (
            conv.ctx,
            conv.begin.user.clone(),
            conv.begin.service.clone(),
        );
        let answering = async {
            if !decoy {
                post_everywhere(ctx, &issued, devices, &tx, &mut pollers).await?;
            }
            // Only the pollers send now: when they stop, the wait ends.
            drop(tx);
            Ok(await_answer(ctx, &mut issued, devices, &mut rx, &user, &service).await)
        };
        let waited = show_and_wait(conv, screen, answering).await?;
        pollers.abort_all();
        let waited = match waited {
            Ok(w) => w,
            Err(e) => return undelivered(conv, e).await,
        };
        // Expired at the relay too: nothing to take back. Otherwise the
        // relay keeps the challenge (answered or not) until it is withdrawn.
        if matches!(waited, Waited::TimedOut) {
            withdraw.disarm();
        } else {
            // This login's push is over: free the user's slot before the
            // client hears the outcome, so a login it starts at once is
            // not told another one is still waiting for the phone.
            _slot = None;
        }
        match waited {
            Waited::Accepted(Decision::Approve, device) => {
                conv.finish(
                    Outcome::Success,
                    &format!("method=push device={}", Q(&device)),
                )
                .await;
                return Ok(PushEnd::Decided);
            }
            Waited::Accepted(Decision::Deny, device) => {
                conv.say_error(MSG_DENIED).await?;
                if let Some(c) = ssh_conn {
                    conv.ctx
                        .push
                        .note_denial(&conv.begin.user, c, Instant::now());
                }
                conv.finish_with(
                    Outcome::Denied,
                    &format!("denied on device={}", Q(&device)),
                    true,
                )
                .await;
                return Ok(PushEnd::Decided);
            }
            Waited::Accepted(Decision::Fraud, device) => return fraud(conv, &device).await,
            Waited::WrongNumber(device) => {
                conv.say_error(MSG_WRONG_NUMBER).await?;
                conv.finish(
                    Outcome::Denied,
                    &format!("wrong number on device={}", Q(&device)),
                )
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
fn issue(conv: &Conversation<'_>, ttl: u32) -> Result<Issued, String> {
    let context = challenge::context_of(&conv.begin, MAX_FIELD_LEN);
    challenge::issue(conv.ctx, context, ttl)
}

/// What the login shows for one challenge, worked out before the wait
/// starts (the wait needs the challenge to itself).
struct Screen {
    mode: PushMode,
    text: String,
    ttl: u32,
}

impl Screen {
    fn new(conv: &Conversation<'_>, mode: PushMode, issued: &Issued) -> Screen {
        let ttl = issued
            .deadline
            .saturating_duration_since(Instant::now())
            .as_secs() as u32;
        let template = match mode {
            PushMode::Prompt => &conv.ctx.cfg.push.prompt_text,
            PushMode::Wait => &conv.ctx.cfg.push.info_text,
        };
        Screen {
            mode,
            text: render(template, issued, ttl, super::offline::allowed(conv)),
            ttl,
        }
    }
}

/// Shows the number; in prompt mode returns what the user typed if it was
/// not just Enter (a recovery code).
async fn show(
    conv: &mut Conversation<'_>,
    screen: &Screen,
) -> Result<Option<Zeroizing<String>>, End> {
    match screen.mode {
        PushMode::Prompt => {
            let answer = conv.ask_then_wait(&screen.text, false, screen.ttl).await?;
            Ok((!answer.trim().is_empty()).then_some(answer))
        }
        PushMode::Wait => {
            conv.say_info(&screen.text, screen.ttl).await?;
            Ok(None)
        }
    }
}

/// Shows the number and, at the same time, posts the challenge and checks
/// answers as they arrive: a bad answer is refused at once (so the real
/// device learns why and can answer again) even while a prompt waits for
/// Enter. The decision is taken once the prompt returns.
async fn show_and_wait(
    conv: &mut Conversation<'_>,
    screen: Screen,
    answering: impl Future<Output = Result<Waited, Undelivered>>,
) -> Result<Result<Waited, Undelivered>, End> {
    let mut answering = std::pin::pin!(answering);
    let mut early = None;
    let typed = {
        let mut showing = std::pin::pin!(show(conv, &screen));
        loop {
            tokio::select! {
                shown = &mut showing => break shown?,
                a = &mut answering, if early.is_none() => early = Some(a),
            }
        }
    };
    if let Some(code) = typed {
        return Ok(Ok(Waited::Typed(code)));
    }
    if let Some(a) = early {
        return Ok(a);
    }
    // While the phone decides, the client only waits: if it goes away (a
    // Ctrl-C on ssh, a killed sudo), the login ends now, so the request is
    // withdrawn and the user's push slot freed at once, not at the TTL.
    tokio::select! {
        a = answering => Ok(a),
        () = conv.conn.closed() => Err(End::Client("client went away while waiting for the phone".into())),
    }
}

/// No device got the challenge. Only a relay that cannot be reached at all
/// (no connection, or a timeout) may let a login through, and only under
/// `failmode = "safe"`; a relay that answered, however badly, never does.
async fn undelivered(conv: &mut Conversation<'_>, e: Undelivered) -> Result<PushEnd, End> {
    let why = e.why;
    let failmode = conv.ctx.cfg.policy.failmode_for(&conv.begin.service);
    if e.unreachable && failmode == FailMode::Safe {
        conv.ctx.log.error(&format!(
            "FAILMODE SAFE: push could not be delivered (error={}); letting user={} service={} in WITHOUT a second factor",
            Q(&why),
            Q(&conv.begin.user),
            Q(&conv.begin.service)
        ));
        conv.finish(Outcome::Success, "failmode=safe, backend unreachable")
            .await;
        return Ok(PushEnd::Decided);
    }
    if e.unreachable {
        conv.ctx.log.warning(&format!(
            "push backend unreachable (error={}); offering offline approval, else asking for a recovery code",
            Q(&why)
        ));
    } else {
        conv.ctx.log.error(&format!(
            "push backend answered but took no challenge (error={}); offering offline approval, else asking for a recovery code (failmode does not apply to an answer)",
            Q(&why)
        ));
    }
    Ok(PushEnd::Unusable(MSG_UNREACHABLE.into()))
}

async fn fraud(conv: &mut Conversation<'_>, device: &str) -> Result<PushEnd, End> {
    let mute = u64::from(conv.ctx.cfg.push.fraud_mute_secs);
    let until = conv.ctx.clock.now_unix() + mute;
    conv.ctx.log.error(&format!(
        "FRAUD REPORTED user={} service={} rhost={} device={}: someone else tried to sign in; pushes muted for {mute} s",
        Q(&conv.begin.user),
        Q(&conv.begin.service),
        Q(conv.begin.rhost.as_deref().unwrap_or("-")),
        Q(device),
    ));
    if let Some(user) = conv.user.clone() {
        if let Err(e) = user_state::with_state(conv.ctx, &user, move |s| {
            s.push_muted_until = Some(until);
            Ok(())
        })
        .await
        {
            conv.ctx
                .log
                .error(&format!("could not persist the push mute: {e}"));
        }
    }
    conv.say_error(&format!(
        "Reported as not you. Approval requests are paused for {} minutes; tell your administrator.",
        mute.div_ceil(60)
    ))
    .await?;
    conv.finish(
        Outcome::Denied,
        &format!("fraud reported on device={}", Q(device)),
    )
    .await;
    Ok(PushEnd::Decided)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushmfa_protocol::signed::{Challenge, Context};

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
            user_verification: false,
        };
        let t = render(
            "{host}: {user} via {service} from {rhost}: {number} ({ttl} s) {{literal}}{offline}",
            &issued,
            42,
            true,
        );
        assert_eq!(
            t,
            "web-1: alice via sshd from this computer: 07 (42 s) {literal}, or o if your phone is offline"
        );
    }
}
