//! A login, from `Begin` to the `Verdict`: what happens in one
//! `pam_sm_authenticate`. The push step (`push`) comes first when a backend
//! is configured, offline approval (`offline`) when push cannot be used,
//! then the recovery-code prompts (`codes`); all talk to the user only
//! through the `conversation`.
//!
//! Unknown, unenrolled and enrolled users see the same prompts in the same
//! order, and every code typed costs one Argon2id hash whoever the user is.
//! Only `policy.unenrolled = "ignore"` answers differently (PAM_IGNORE, no
//! prompt), which is what that setting is for.

mod codes;
mod conversation;
mod devices;
mod first_enroll;
mod offline;
mod push;

use crate::conn::Conn;
use crate::ctx::Ctx;
use crate::log::Q;
use crate::peer::{self, Peer};
use crate::recovery::RecoveryError;
use crate::scoping;
use crate::user_state;
use conversation::{Conversation, End};
use first_enroll::FirstEnroll;
use offline::OfflineEnd;
use push::PushEnd;
use pushmfa_config::Unenrolled;
use pushmfa_protocol::ipc::{Begin, Outcome, Response};
use pushmfa_protocol::text::sanitize;
use pushmfa_state::{UserName, UserState};
use zeroize::Zeroizing;

/// Runs the login that `begin` starts on this connection.
pub async fn run(ctx: &Ctx, conn: &mut Conn, peer: Peer, begin: Begin) {
    if !peer::may_authenticate(&peer, &begin.user) {
        ctx.log.warning_from(
            peer.uid,
            "authenticate another user",
            &format!(
                "refused: uid {} asked to authenticate user={} service={}; only root may authenticate other users",
                peer.uid,
                Q(&begin.user),
                Q(&begin.service)
            ),
        );
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
            "user name {} cannot be enrolled (unsupported characters); treating it as unknown",
            Q(&begin.user)
        ));
    }
    let mut conv = Conversation {
        ctx,
        conn,
        peer,
        begin,
        user,
        held: Vec::new(),
        // Until the rules are read: a login that ends before that was
        // decided by nothing in [policy].
        rule: "-",
    };
    steps(&mut conv).await;
}

/// The scoping rules first (`[policy]`); then push (when a backend is
/// configured), offline approval, recovery codes.
async fn steps(conv: &mut Conversation<'_>) {
    let decided = scoping::decide(conv.ctx, &conv.begin.user, conv.begin.rhost.as_deref()).await;
    let scope = decided.scope;
    conv.rule = scope.rule;
    if scope.rule == "nss_lookup" {
        conv.ctx
            .log
            .error(&format!("policy: {}", sanitize(&scope.why, false)));
    }
    if !scope.required {
        let detail = format!("policy: no second factor needed, {}", scope.why);
        return conv.finish(Outcome::Ignore, &detail).await;
    }
    let state = match load_state(conv).await {
        Ok(s) => s,
        Err(e) => {
            return conv
                .finish(Outcome::Unavailable, &format!("state: {e}"))
                .await;
        }
    };
    let enrolled = state.enrolled();
    let unenrolled = conv.ctx.cfg.policy.unenrolled_for(&conv.begin.service);
    if !enrolled && unenrolled == Unenrolled::Ignore {
        return conv
            .finish(Outcome::Ignore, "not enrolled (policy: ignore)")
            .await;
    }
    if !enrolled && unenrolled == Unenrolled::Enroll {
        match first_enroll::first_enroll(conv).await {
            Ok(FirstEnroll::Decided) => return,
            // Past enroll_until and the like: as unenrolled = "deny".
            Ok(FirstEnroll::NotOffered) => {}
            Err(End::Client(why)) => return conv.finish(Outcome::Denied, &why).await,
        }
    }
    match second_factor(conv, &state).await {
        Ok(Next::Decided) => {}
        Ok(Next::RecoveryCode(first_code)) => {
            if let Err(End::Client(why)) = codes::recovery_prompts(conv, enrolled, first_code).await
            {
                conv.finish(Outcome::Denied, &why).await;
            }
        }
        Err(End::Client(why)) => conv.finish(Outcome::Denied, &why).await,
    }
}

/// What comes after the push and offline steps.
enum Next {
    Decided,
    /// Recovery-code prompts, the first code perhaps already typed.
    RecoveryCode(Option<Zeroizing<String>>),
}

/// Push, then offline approval when push cannot be used (the relay is
/// unreachable, or the user typed `o` at the push prompt).
async fn second_factor(conv: &mut Conversation<'_>, state: &UserState) -> Result<Next, End> {
    if conv.ctx.relay.is_none() {
        return Ok(Next::RecoveryCode(None));
    }
    match push::push_step(conv, state).await? {
        PushEnd::Decided => Ok(Next::Decided),
        PushEnd::CodeTyped(code) if offline::asked_for(&code) => offline(conv, state).await,
        PushEnd::CodeTyped(code) => Ok(Next::RecoveryCode(Some(code))),
        PushEnd::FallBack(msg) => {
            conv.say_error(&msg).await?;
            Ok(Next::RecoveryCode(None))
        }
        PushEnd::Unusable(msg) => {
            conv.say_error(&msg).await?;
            if offline::allowed(conv) {
                offline(conv, state).await
            } else {
                Ok(Next::RecoveryCode(None))
            }
        }
    }
}

async fn offline(conv: &mut Conversation<'_>, state: &UserState) -> Result<Next, End> {
    match offline::offline_step(conv, state).await? {
        OfflineEnd::Decided => Ok(Next::Decided),
        OfflineEnd::CodeTyped(code) => Ok(Next::RecoveryCode(Some(code))),
        OfflineEnd::FallBack(msg) => {
            conv.say_error(msg).await?;
            Ok(Next::RecoveryCode(None))
        }
    }
}

/// The user's state; a name that cannot be stored is an unknown user.
async fn load_state(conv: &Conversation<'_>) -> Result<UserState, RecoveryError> {
    match &conv.user {
        Some(user) => user_state::load(conv.ctx, user).await,
        None => Ok(UserState::new()),
    }
}
