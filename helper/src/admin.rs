//! Administrative calls from the `pushmfa` CLI.
//!
//! Root and the helper's own user may act on any user. Anyone else acts on
//! themself only, and replacing existing recovery codes needs one of them
//! (so a borrowed, unlocked terminal cannot silently re-enroll a user).

use crate::conn::Conn;
use crate::peer::{self, Peer};
use crate::recovery::{self, Attempt, RecoveryError};
use crate::server::Ctx;
use crate::store::UserName;
use pushmfa_protocol::ipc::{AdminReply, AdminRequest, Response};
use zeroize::Zeroizing;

pub async fn run(ctx: &Ctx, conn: &mut Conn, peer: Peer, req: AdminRequest) {
    let response = match handle(ctx, peer, req).await {
        Ok(reply) => Response::AdminReply(reply),
        Err(message) => Response::Refused { message },
    };
    let _ = conn.send(&response).await;
}

async fn handle(ctx: &Ctx, peer: Peer, req: AdminRequest) -> Result<AdminReply, String> {
    match req {
        AdminRequest::Ping => Ok(AdminReply::Pong {
            version: env!("CARGO_PKG_VERSION").into(),
            helper_uid: ctx.helper_uid,
        }),
        AdminRequest::Status { user } => status(ctx, peer, user).await,
        AdminRequest::RecoveryGenerate { user, proof } => generate(ctx, peer, user, proof).await,
        AdminRequest::Unlock { user } => unlock(ctx, peer, user).await,
    }
}

/// The user an admin call acts on: the named one (admins, or the caller
/// naming themself) or the caller.
async fn target(ctx: &Ctx, peer: Peer, requested: Option<String>) -> Result<UserName, String> {
    let uid = peer.uid;
    let caller = tokio::task::spawn_blocking(move || peer::name_of(uid))
        .await
        .map_err(|e| e.to_string())?;
    let name = match (requested, caller) {
        (Some(u), Some(me)) if u == me => u,
        (Some(u), _) if peer.is_admin(ctx.helper_uid) => u,
        (Some(u), _) => {
            ctx.log.warning(&format!(
                "refused: uid {uid} asked to manage user {u}; only root may manage other users"
            ));
            return Err(format!("only root may manage user {u}"));
        }
        (None, Some(me)) => me,
        (None, None) => return Err(format!("uid {uid} has no user name; pass --user")),
    };
    UserName::parse(&name).ok_or_else(|| format!("user name {name:?} is not supported"))
}

fn store_err(ctx: &Ctx, what: &str, e: RecoveryError) -> String {
    ctx.log.error(&format!("{what}: {e}"));
    format!("{what} failed: {e}")
}

async fn status(ctx: &Ctx, peer: Peer, user: Option<String>) -> Result<AdminReply, String> {
    let user = target(ctx, peer, user).await?;
    let (store, cfg, now) = (
        ctx.store.clone(),
        ctx.cfg.recovery.clone(),
        ctx.clock.now_unix(),
    );
    let st = tokio::task::spawn_blocking(move || recovery::status(&store, &user, &cfg, now))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| store_err(ctx, "status", e))?;
    Ok(AdminReply::Status(st))
}

async fn generate(
    ctx: &Ctx,
    peer: Peer,
    user: Option<String>,
    proof: Option<Zeroizing<String>>,
) -> Result<AdminReply, String> {
    let user = target(ctx, peer, user).await?;
    let admin = peer.is_admin(ctx.helper_uid);
    let (store, cfg, now) = (
        ctx.store.clone(),
        ctx.cfg.recovery.clone(),
        ctx.clock.now_unix(),
    );
    let u = user.clone();
    let job =
        move |scratch: &mut crate::codes::Scratch| -> Result<Result<_, String>, RecoveryError> {
            let enrolled = store.load(&u)?.is_some_and(|s| s.enrolled());
            if enrolled && !admin {
                let Some(proof) = proof else {
                    return Ok(Err("you already have recovery codes: give one of them (pushmfa recovery generate asks for it)".into()));
                };
                let Ok(code) = crate::codes::normalize(&proof) else {
                    return Ok(Err("that is not a recovery code".into()));
                };
                match recovery::attempt(&store, Some(&u), &code, &cfg, now, scratch)? {
                    Attempt::Accepted { .. } => {}
                    Attempt::Backoff { retry_after } => {
                        return Ok(Err(format!("too many wrong codes: wait {retry_after} s")));
                    }
                    Attempt::LockedOut => {
                        return Ok(Err("recovery codes are locked; ask an administrator".into()));
                    }
                    Attempt::Wrong | Attempt::NotEnrolled => {
                        return Ok(Err("that recovery code is not valid".into()));
                    }
                }
            }
            Ok(Ok(recovery::generate(&store, &u, &cfg, now, scratch)?))
        };
    let result = ctx
        .hashers
        .run(job)
        .await?
        .map_err(|e| store_err(ctx, "recovery generate", e))?;
    match result {
        Ok(codes) => {
            ctx.log.info(&format!(
                "recovery codes generated user={user} count={} by_uid={}",
                codes.len(),
                peer.uid
            ));
            Ok(AdminReply::RecoveryCodes {
                user: user.to_string(),
                codes,
            })
        }
        Err(msg) => {
            ctx.log.warning(&format!(
                "recovery generate refused user={user} by_uid={}: {msg}",
                peer.uid
            ));
            Err(msg)
        }
    }
}

async fn unlock(ctx: &Ctx, peer: Peer, user: String) -> Result<AdminReply, String> {
    if !peer.is_admin(ctx.helper_uid) {
        return Err("only root may unlock a user".into());
    }
    let user =
        UserName::parse(&user).ok_or_else(|| format!("user name {user:?} is not supported"))?;
    let (store, u) = (ctx.store.clone(), user.clone());
    let had_state = tokio::task::spawn_blocking(move || recovery::unlock(&store, &u))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| store_err(ctx, "unlock", e))?;
    ctx.log
        .info(&format!("unlock user={user} by_uid={}", peer.uid));
    Ok(AdminReply::Done {
        message: if had_state {
            format!("{user}: failure counter cleared")
        } else {
            format!("{user}: not enrolled, nothing to unlock")
        },
    })
}
