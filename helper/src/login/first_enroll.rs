//! Enrollment at a first login (`policy.unenrolled = "enroll"`), for
//! rollouts: an unenrolled user in scope, past the password, is shown the
//! enrollment QR code in the login itself, enrolls a phone, gets recovery
//! codes, and the login completes.
//!
//! A stolen password would enroll the thief's phone, so it works only until
//! `policy.enroll_until` (then the login goes on as "deny"), optionally only
//! after a one-time invitation (`pushmfa invite`), and every enrollment is
//! logged at warning level.

use super::conversation::{Conversation, End};
use crate::enrollment::{self, Started};
use crate::invitations::{self, Checked};
use crate::log::Q;
use crate::terminal_qr;
use pushmfa_protocol::enroll::EnrollUri;
use pushmfa_protocol::ipc::Outcome;
use pushmfa_state::UserName;

pub const INVITE_PROMPT: &str = "Invitation code from your administrator: ";
pub const MSG_BAD_INVITE: &str = "That invitation code is not valid (wrong, used or expired). Ask your administrator for a new one.";
pub const MSG_BLOCKED: &str =
    "Too many wrong codes: ask your administrator (pushmfa unlock), then try again.";
pub const DONE_PROMPT: &str = "Press Enter once your phone says the account was added: ";

/// How the step ended.
pub(super) enum FirstEnroll {
    /// A verdict was sent.
    Decided,
    /// Not offered (past `enroll_until`, no relay, a name that cannot be
    /// stored): the login goes on as for `unenrolled = "deny"`.
    NotOffered,
}

pub(super) async fn first_enroll(conv: &mut Conversation<'_>) -> Result<FirstEnroll, End> {
    let ctx = conv.ctx;
    let policy = &ctx.cfg.policy;
    let Some(user) = conv.user.clone() else {
        return Ok(FirstEnroll::NotOffered);
    };
    let now = ctx.clock.now_unix();
    if policy.enroll_ends_at().is_none_or(|end| now >= end) {
        ctx.log.warning(&format!(
            "first-login enrollment not offered user={}: policy.enroll_until ({}) has passed; acting as unenrolled = \"deny\"",
            Q(user.as_str()),
            policy.enroll_until
        ));
        return Ok(FirstEnroll::NotOffered);
    }
    if ctx.relay.is_none() {
        ctx.log.warning(
            "first-login enrollment not offered: no relay is configured; acting as unenrolled = \"deny\"",
        );
        return Ok(FirstEnroll::NotOffered);
    }
    if policy.enroll_invitation && !invited(conv, &user).await? {
        return Ok(FirstEnroll::Decided);
    }
    let started = match enrollment::start(ctx, &user).await {
        Ok(s) => s,
        Err(e) => {
            conv.say_error("Enrollment could not start; try again later.")
                .await?;
            conv.finish(
                Outcome::Unavailable,
                &format!("first-login enrollment: {e}"),
            )
            .await;
            return Ok(FirstEnroll::Decided);
        }
    };
    let text = screen(conv, &started);
    let ttl = u32::try_from(started.ttl).unwrap_or(u32::MAX);
    // The phone registers while the prompt waits for Enter.
    let mut finishing = std::pin::pin!(enrollment::finish(ctx, started, &user));
    let mut done = None;
    {
        let mut asking = std::pin::pin!(conv.ask_then_wait(&text, false, ttl));
        loop {
            tokio::select! {
                answer = &mut asking => {
                    answer?;
                    break;
                }
                r = &mut finishing, if done.is_none() => done = Some(r),
            }
        }
    }
    let result = match done {
        Some(r) => r,
        None => tokio::select! {
            r = finishing => r,
            () = conv.conn.closed() => return Err(End::Client("client went away during enrollment".into())),
        },
    };
    let enrolled = match result {
        Ok(e) => e,
        Err(e) => {
            conv.say_error(&format!("Enrollment failed: {e}")).await?;
            conv.finish(
                Outcome::Denied,
                &format!("first-login enrollment failed: {e}"),
            )
            .await;
            return Ok(FirstEnroll::Decided);
        }
    };
    let b = &conv.begin;
    ctx.log.warning(&format!(
        "FIRST-LOGIN ENROLLMENT user={} service={} rhost={} device={} id={} (policy.unenrolled = \"enroll\" until {}; invitation: {})",
        Q(&b.user),
        Q(&b.service),
        Q(b.rhost.as_deref().unwrap_or("-")),
        Q(&enrolled.device_name),
        enrolled.device_id,
        policy.enroll_until,
        if policy.enroll_invitation { "used" } else { "not required" }
    ));
    if !enrolled.codes.is_empty() {
        let list: Vec<&str> = enrolled.codes.iter().map(|c| c.as_str()).collect();
        let text = format!(
            "Your recovery codes (each works once, for when the phone is not at hand; keep them apart from it):\n{}\nPress Enter once you have written them down: ",
            list.join("\n")
        );
        conv.ask(&text, false).await?;
    }
    let detail = format!("method=enroll device={}", Q(&enrolled.device_name));
    conv.finish(Outcome::Success, &detail).await;
    Ok(FirstEnroll::Decided)
}

/// Asks for the invitation and checks it; false (a verdict sent) when it
/// is not good.
async fn invited(conv: &mut Conversation<'_>, user: &UserName) -> Result<bool, End> {
    let typed = conv.ask(INVITE_PROMPT, false).await?;
    let ctx = conv.ctx;
    let (store, u, cfg, now) = (
        ctx.store.clone(),
        user.clone(),
        ctx.cfg.recovery.clone(),
        ctx.clock.now_unix(),
    );
    let checked =
        tokio::task::spawn_blocking(move || invitations::check(&store, &u, &typed, &cfg, now))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
    let (message, detail) = match checked {
        Ok(Checked::Accepted) => return Ok(true),
        Ok(Checked::Refused) => (
            MSG_BAD_INVITE,
            "first-login enrollment: wrong, used or expired invitation".to_owned(),
        ),
        Ok(Checked::Blocked) => (
            MSG_BLOCKED,
            "first-login enrollment: codes locked or in backoff".to_owned(),
        ),
        Err(e) => {
            conv.finish(Outcome::Unavailable, &format!("invitation check: {e}"))
                .await;
            return Ok(false);
        }
    };
    conv.say_error(message).await?;
    conv.finish(Outcome::Denied, &detail).await;
    Ok(false)
}

/// What to do, the QR code (a link to the web app when a phone can open
/// one, else the URI), the URI for software authenticators, the prompt.
fn screen(conv: &mut Conversation<'_>, started: &Started) -> String {
    let app_url = Some(conv.ctx.cfg.backend.app_url.as_str()).filter(|u| !u.is_empty());
    let link = EnrollUri::parse(&started.uri)
        .ok()
        .and_then(|u| u.phone_link(app_url));
    let scanned = link.as_deref().map_or(started.uri.as_str(), String::as_str);
    let mut text = conv.take_held_line();
    text.push_str(&format!(
        "{} needs a second factor from now on: enroll a phone now (the code works for {} s).\n",
        conv.begin.user, started.ttl
    ));
    match terminal_qr::render(scanned) {
        Some(qr) => text.push_str(&qr),
        None => text.push_str(&format!("Open this on the phone: {scanned}\n")),
    }
    text.push_str(&format!(
        "Scan it with the phone's camera. For pushmfa-authenticator:\n{}\n",
        started.uri.as_str()
    ));
    text.push_str(DONE_PROMPT);
    text
}
