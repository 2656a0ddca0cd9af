//! Proof that a caller is the user before their factors change: nothing
//! for root and the helper's user; otherwise one of the user's recovery
//! codes (used up), or an approval on one of their enrolled devices.

use crate::codes::{self, Scratch};
use crate::conn::Conn;
use crate::ctx::Ctx;
use crate::log::Q;
use crate::peer::Peer;
use crate::push::challenge::{field, issue};
use crate::push::delivery::{Waited, await_answer, post_everywhere};
use crate::recovery::{self, Attempt, RecoveryError};
use crate::user_state::{self, logged};
use pushmfa_protocol::ipc::{AdminReply, Proof, Response};
use pushmfa_protocol::signed::{Context, Decision};
use pushmfa_state::UserName;

/// A non-admin caller who is already enrolled must prove it is them before
/// changing their factors: with one of their recovery codes (used up), or
/// by approving `action` on one of their enrolled devices.
pub async fn require_proof(
    ctx: &Ctx,
    conn: &mut Conn,
    peer: Peer,
    user: &UserName,
    proof: Option<Proof>,
    action: &str,
) -> Result<(), String> {
    if peer.is_admin(ctx.helper_uid) {
        return Ok(());
    }
    let verdict = match proof {
        Some(Proof::Device {}) => prove_on_device(ctx, conn, user, action).await,
        other => prove_with_code(ctx, user, other).await,
    };
    if let Err(msg) = &verdict {
        ctx.log.warning(&format!(
            "refused change for user={} by_uid={}: {msg}",
            Q(user.as_str()),
            peer.uid
        ));
    }
    verdict
}

async fn prove_with_code(ctx: &Ctx, user: &UserName, proof: Option<Proof>) -> Result<(), String> {
    let (store, cfg, now, u) = (
        ctx.store.clone(),
        ctx.cfg.recovery.clone(),
        ctx.clock.now_unix(),
        user.clone(),
    );
    let job = move |scratch: &mut Scratch| -> Result<Result<(), String>, RecoveryError> {
        if !store.load(&u)?.is_some_and(|s| s.enrolled()) {
            return Ok(Ok(()));
        }
        let Some(Proof::Code { code: proof }) = proof else {
            return Ok(Err(
                "you are already enrolled: give one of your recovery codes or approve on your phone (the CLI asks)".into(),
            ));
        };
        let Ok(code) = codes::normalize(&proof) else {
            return Ok(Err("that is not a recovery code".into()));
        };
        Ok(
            match recovery::attempt(&store, Some(&u), &code, &cfg, now, scratch)? {
                Attempt::Accepted { .. } => Ok(()),
                Attempt::Backoff { retry_after } => {
                    Err(format!("too many wrong codes: wait {retry_after} s"))
                }
                Attempt::LockedOut => Err("recovery codes are locked; ask an administrator".into()),
                Attempt::Wrong | Attempt::NotEnrolled => {
                    Err("that recovery code is not valid".into())
                }
            },
        )
    };
    ctx.hashers
        .run(job)
        .await?
        .map_err(|e| logged(ctx, "proof", e))?
}

/// Sends a signed challenge about `action` to the user's devices, tells the
/// CLI the number, and waits for a verified approval.
async fn prove_on_device(
    ctx: &Ctx,
    conn: &mut Conn,
    user: &UserName,
    action: &str,
) -> Result<(), String> {
    let state = user_state::load(ctx, user)
        .await
        .map_err(|e| e.to_string())?;
    if state.devices.is_empty() {
        return Err("you have no enrolled device: give one of your recovery codes instead".into());
    }
    let service = format!("pushmfa: {action}");
    let context = Context {
        user: field(Some(user.as_str())),
        service: field(Some(&service)),
        rhost: String::new(),
        tty: String::new(),
    };
    let ttl = ctx.cfg.push.ttl_secs;
    let mut issued = issue(ctx, context, ttl)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let mut pollers = tokio::task::JoinSet::new();
    post_everywhere(ctx, &issued, &state.devices, &tx, &mut pollers)
        .await
        .map_err(|e| format!("cannot reach your devices ({}); use a recovery code", e.why))?;
    drop(tx);
    conn.send(&Response::AdminReply(AdminReply::ApproveOnDevice {
        number: issued.number,
        expires_in: u64::from(ttl),
    }))
    .await
    .map_err(|e| e.to_string())?;
    let waited = await_answer(
        ctx,
        &mut issued,
        &state.devices,
        &mut rx,
        user.as_str(),
        &service,
    )
    .await;
    pollers.abort_all();
    match waited {
        Waited::Accepted(Decision::Approve, device) => {
            ctx.log.info(&format!(
                "user={} approved \"{action}\" on device={}",
                Q(user.as_str()),
                Q(&device)
            ));
            Ok(())
        }
        Waited::Accepted(Decision::Fraud, device) => {
            ctx.log.error(&format!(
                "FRAUD REPORTED user={} for \"{action}\" on device={}",
                Q(user.as_str()),
                Q(&device)
            ));
            Err("reported as not you on your device".into())
        }
        Waited::Accepted(Decision::Deny, _) => Err("denied on your device".into()),
        Waited::WrongNumber(_) => Err("the number entered on the device did not match".into()),
        Waited::TimedOut | Waited::Typed(_) => Err("no approval from your device in time".into()),
    }
}
