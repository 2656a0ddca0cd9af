//! The offline step of a login: when push cannot be used, the prompt shows
//! a challenge signed by this host as a QR code (and as text to paste); the
//! phone checks it and shows an 8-digit code made with the key it derived
//! at enrollment; the user types it here (protocol::offline).
//!
//! A code is good for this login's challenge only, until the prompt's
//! timeout; wrong ones count with wrong recovery codes.

use super::conversation::{Conversation, End};
use crate::log::Q;
use crate::offline_codes::{self, OfflineAttempt};
use crate::push::challenge::{self, Issued, field_at_most};
use crate::terminal_qr;
use crate::user_state;
use pushmfa_config::Offline;
use pushmfa_protocol::ipc::Outcome;
use pushmfa_protocol::offline::{parse_code, request_text};
use pushmfa_protocol::signed::SIGNATURE_LEN;
use pushmfa_state::UserState;
use std::time::Instant;
use zeroize::Zeroizing;

/// What the user types at the push prompt to ask for offline approval.
pub const ASK_WORD: &str = "o";
pub const CODE_PROMPT: &str = "Code from your phone (or a recovery code): ";
pub const MSG_WRONG: &str = "That code is not the one for this request.";
pub const MSG_NOT_A_CODE: &str = "Type the 8-digit code your phone shows for this request.";
pub const MSG_EXPIRED: &str = "This offline request has expired. Sign in again for a new one.";
pub const MSG_TURNED_OFF: &str = "Offline approval is turned off for this service.";
pub const MSG_LOCKED: &str = "Codes are locked after too many wrong attempts (offline and recovery codes count together). Ask an administrator to unlock them.";
pub const MSG_RE_ENROLL: &str = "Your devices were enrolled before offline approval existed: re-enroll one for offline approval (pushmfa enroll).";
pub const MSG_NEEDS_VERIFICATION: &str = "This service needs approval checked by your phone's screen lock, which an offline code cannot prove.";
/// Longest context field in an offline challenge when the full ones would
/// make the QR code wider than a terminal.
const SHORT_FIELD: usize = 32;

/// How the offline step ended.
pub(super) enum OfflineEnd {
    /// A verdict was sent.
    Decided,
    /// The user typed something else than a code: a recovery code.
    CodeTyped(Zeroizing<String>),
    /// Offline approval cannot be used: say this, then ask for a recovery code.
    FallBack(&'static str),
}

/// Whether a prompt answer asks for offline approval.
pub(super) fn asked_for(answer: &str) -> bool {
    answer.trim().eq_ignore_ascii_case(ASK_WORD)
}

/// Whether offline approval may be offered for this login's service.
pub(super) fn allowed(conv: &Conversation<'_>) -> bool {
    let cfg = &conv.ctx.cfg;
    cfg.policy.offline_for(&conv.begin.service) == Offline::Allow
        && !cfg.push.user_verification_for(&conv.begin.service)
}

pub(super) async fn offline_step(
    conv: &mut Conversation<'_>,
    state: &UserState,
) -> Result<OfflineEnd, End> {
    let service = conv.begin.service.clone();
    if conv.ctx.cfg.policy.offline_for(&service) == Offline::Deny {
        return Ok(OfflineEnd::FallBack(MSG_TURNED_OFF));
    }
    if conv.ctx.cfg.push.user_verification_for(&service) {
        return Ok(OfflineEnd::FallBack(MSG_NEEDS_VERIFICATION));
    }
    let keys = offline_codes::key_count(state);
    if keys == 0 && !state.devices.is_empty() {
        conv.ctx.log.info(&format!(
            "offline approval not possible user={}: no device has an offline key (enrolled before offline approval)",
            Q(&conv.begin.user)
        ));
        return Ok(OfflineEnd::FallBack(MSG_RE_ENROLL));
    }
    // Users without devices (unknown, unenrolled, codes only) see a real
    // challenge too, so the prompts say nothing about who is enrolled.
    let ttl = conv.ctx.cfg.helper.prompt_timeout_secs;
    let (issued, screen) = match issue_and_draw(conv, ttl) {
        Ok(v) => v,
        Err(e) => {
            conv.finish(Outcome::Error, &format!("cannot sign a challenge: {e}"))
                .await;
            return Ok(OfflineEnd::Decided);
        }
    };
    conv.ctx.log.info(&format!(
        "offline approval offered user={} service={} devices_with_key={keys}",
        Q(&conv.begin.user),
        Q(&service)
    ));
    let encoded = issued.challenge.encode();
    let mut text = screen;
    for _ in 0..conv.ctx.cfg.recovery.max_tries {
        let answer = conv.ask(&text, false).await?;
        // The QR code stays on the screen: later prompts are one line.
        text = CODE_PROMPT.to_owned();
        let Some(code) = parse_code(&answer) else {
            if answer.trim().is_empty() || asked_for(&answer) {
                conv.say_error(MSG_NOT_A_CODE).await?;
                continue;
            }
            return Ok(OfflineEnd::CodeTyped(answer));
        };
        if Instant::now() >= issued.deadline {
            conv.say_error(MSG_EXPIRED).await?;
            conv.finish(
                Outcome::Denied,
                "offline code typed after the request expired",
            )
            .await;
            return Ok(OfflineEnd::Decided);
        }
        let attempt = match (&conv.user, keys) {
            (Some(user), 1..) => {
                user_state::check_offline_code(conv.ctx, user, encoded.clone(), code).await
            }
            _ => Ok(OfflineAttempt::Wrong),
        };
        match attempt {
            Ok(OfflineAttempt::Accepted { device }) => {
                let detail = format!("method=offline device={}", Q(&device));
                conv.finish(Outcome::Success, &detail).await;
                return Ok(OfflineEnd::Decided);
            }
            Ok(OfflineAttempt::Wrong) => {
                conv.ctx.log.warning(&format!(
                    "wrong offline code user={} service={}",
                    Q(&conv.begin.user),
                    Q(&service)
                ));
                conv.say_error(MSG_WRONG).await?;
            }
            Ok(OfflineAttempt::Backoff { retry_after }) => {
                let msg =
                    format!("Too many wrong codes: wait {retry_after} seconds, then try again.");
                conv.say_error(&msg).await?;
                let detail = format!("offline code backoff, retry after {retry_after}s");
                conv.finish(Outcome::Denied, &detail).await;
                return Ok(OfflineEnd::Decided);
            }
            Ok(OfflineAttempt::LockedOut) => {
                conv.say_error(MSG_LOCKED).await?;
                conv.finish(Outcome::Denied, "codes locked out (offline code)")
                    .await;
                return Ok(OfflineEnd::Decided);
            }
            Err(e) => {
                conv.finish(Outcome::Unavailable, &format!("offline code check: {e}"))
                    .await;
                return Ok(OfflineEnd::Decided);
            }
        }
    }
    conv.say_error("Too many wrong codes.").await?;
    conv.finish(Outcome::MaxTries, "wrong offline codes").await;
    Ok(OfflineEnd::Decided)
}

/// A signed challenge for this login and the prompt that shows it. Context
/// fields are shortened when the full ones would not fit 80 columns.
fn issue_and_draw(conv: &mut Conversation<'_>, ttl: u32) -> Result<(Issued, String), String> {
    for max in [usize::MAX, SHORT_FIELD] {
        let issued = issue(conv, ttl, max)?;
        let encoded = issued.challenge.encode();
        let sig = conv.ctx.host_key.sign(&encoded)?;
        let sig: [u8; SIGNATURE_LEN] = sig
            .try_into()
            .map_err(|_| "the host key made a signature of the wrong length".to_string())?;
        let request = request_text(&encoded, &sig);
        if let Some(qr) = terminal_qr::render(&request) {
            let screen = screen(conv, &issued, &qr, &request);
            return Ok((issued, screen));
        }
    }
    Err("the request does not fit a QR code for an 80-column terminal".into())
}

fn issue(conv: &Conversation<'_>, ttl: u32, max: usize) -> Result<Issued, String> {
    let context = challenge::context_of(&conv.begin, max);
    let mut issued = challenge::issue(conv.ctx, context, ttl)?;
    issued.challenge.host_name = field_at_most(Some(&issued.challenge.host_name), max);
    Ok(issued)
}

/// What to do, the QR code, the same request as text, the prompt. Lines
/// held back under PAM_SILENT go first. The QR code starts on a line of its
/// own (ssh puts "(user@host) " before a prompt's first line).
fn screen(conv: &mut Conversation<'_>, issued: &Issued, qr: &str, request: &str) -> String {
    let mut text = conv.take_held_line();
    text.push_str(&format!(
        "Offline approval for {} on {}: scan this with the pushmfa app.\n",
        issued.challenge.context.user, issued.challenge.host_name
    ));
    text.push_str(qr);
    text.push_str("No camera? Paste this line into the app (Scan a sign-in code):\n");
    text.push_str(request);
    text.push('\n');
    text.push_str(CODE_PROMPT);
    text
}
