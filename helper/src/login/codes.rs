//! The recovery-code prompts of a login: up to `max_tries` codes, each
//! costing one Argon2id hash whoever the user is; backoff and lockout.

use super::conversation::{Conversation, End};
use crate::codes;
use crate::recovery::Attempt;
use crate::user_state;
use pushmfa_protocol::ipc::Outcome;
use zeroize::Zeroizing;

pub const CODE_PROMPT: &str = "Recovery code: ";
pub const MSG_WRONG: &str = "That recovery code is not valid.";
pub const MSG_NOT_A_CODE: &str =
    "That is not a recovery code (they look like XXXX-XXXX-XXXX-XXXX).";
pub const MSG_TOO_MANY: &str = "Too many wrong recovery codes.";
pub const MSG_LOCKED: &str =
    "Recovery codes are locked after too many wrong attempts. Ask an administrator to unlock them.";

/// Up to `max_tries` code prompts (the first answer may already have been
/// typed at the push prompt); ends the login with a verdict unless the
/// client went away.
pub(super) async fn recovery_prompts(
    conv: &mut Conversation<'_>,
    enrolled: bool,
    mut first: Option<Zeroizing<String>>,
) -> Result<(), End> {
    let max_tries = conv.ctx.cfg.recovery.max_tries;
    for _ in 0..max_tries {
        let answer = match first.take() {
            Some(a) => a,
            None => conv.ask(CODE_PROMPT, false).await?,
        };
        let code = match codes::normalize(&answer) {
            Ok(c) => c,
            Err(_) => {
                conv.say_error(MSG_NOT_A_CODE).await?;
                continue;
            }
        };
        match user_state::check_code(conv.ctx, conv.user.as_ref(), code).await {
            Ok(Attempt::Accepted { codes_left }) => {
                let detail = format!("method=recovery-code codes_left={codes_left}");
                conv.finish(Outcome::Success, &detail).await;
                return Ok(());
            }
            Ok(Attempt::Wrong) | Ok(Attempt::NotEnrolled) => {
                conv.say_error(MSG_WRONG).await?;
            }
            Ok(Attempt::Backoff { retry_after }) => {
                let msg = format!(
                    "Too many wrong recovery codes: wait {retry_after} seconds, then try again."
                );
                conv.say_error(&msg).await?;
                let detail = format!("recovery-code backoff, retry after {retry_after}s");
                conv.finish(Outcome::Denied, &detail).await;
                return Ok(());
            }
            Ok(Attempt::LockedOut) => {
                conv.say_error(MSG_LOCKED).await?;
                conv.finish(Outcome::Denied, "recovery codes locked out")
                    .await;
                return Ok(());
            }
            Err(e) => {
                conv.finish(Outcome::Unavailable, &format!("recovery code check: {e}"))
                    .await;
                return Ok(());
            }
        }
    }
    conv.say_error(MSG_TOO_MANY).await?;
    let why = if enrolled {
        "wrong recovery codes"
    } else {
        "not enrolled"
    };
    conv.finish(Outcome::MaxTries, why).await;
    Ok(())
}
