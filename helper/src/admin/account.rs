//! A user's account as a whole: status, new recovery codes, reset, unlock.

use super::target::{admin_target, target};
use crate::conn::Conn;
use crate::ctx::Ctx;
use crate::log::Q;
use crate::peer::Peer;
use crate::proof::require_proof;
use crate::recovery;
use crate::user_state::{generate_codes, logged};
use pushmfa_protocol::ipc::{AdminReply, Proof};
use pushmfa_state::Device;

pub(super) async fn status(
    ctx: &Ctx,
    peer: Peer,
    user: Option<String>,
) -> Result<AdminReply, String> {
    let user = target(ctx, peer, user).await?;
    let (store, cfg, now) = (
        ctx.store.clone(),
        ctx.cfg.recovery.clone(),
        ctx.clock.now_unix(),
    );
    let st = tokio::task::spawn_blocking(move || recovery::status(&store, &user, &cfg, now))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| logged(ctx, "status", e))?;
    Ok(AdminReply::Status(st))
}

pub(super) async fn generate(
    ctx: &Ctx,
    conn: &mut Conn,
    peer: Peer,
    user: Option<String>,
    proof: Option<Proof>,
) -> Result<AdminReply, String> {
    let user = target(ctx, peer, user).await?;
    require_proof(ctx, conn, peer, &user, proof, "replace recovery codes").await?;
    let codes = generate_codes(ctx, &user).await?;
    ctx.log.info(&format!(
        "recovery codes generated user={} count={} by_uid={}",
        Q(user.as_str()),
        codes.len(),
        peer.uid
    ));
    Ok(AdminReply::RecoveryCodes {
        user: user.to_string(),
        codes,
    })
}

pub(super) async fn reset(ctx: &Ctx, peer: Peer, user: String) -> Result<AdminReply, String> {
    let user = admin_target(ctx, peer, &user, "reset")?;
    let (store, u) = (ctx.store.clone(), user.clone());
    let devices = tokio::task::spawn_blocking(move || -> Result<Vec<Device>, String> {
        let lock = store.lock(&u).map_err(|e| e.to_string())?;
        let devices = store
            .load(&u)
            .ok()
            .flatten()
            .map(|s| s.devices)
            .unwrap_or_default();
        store.remove(&lock, &u).map_err(|e| e.to_string())?;
        Ok(devices)
    })
    .await
    .map_err(|e| e.to_string())??;
    if let Some(relay) = &ctx.relay {
        for d in &devices {
            let _ = relay.delete_channel(&d.channel_id, &d.channel_token).await;
        }
    }
    ctx.log.info(&format!(
        "reset user={} devices={} by_uid={}",
        Q(user.as_str()),
        devices.len(),
        peer.uid
    ));
    Ok(AdminReply::Done {
        message: format!(
            "{user}: removed {} device(s) and all recovery codes",
            devices.len()
        ),
    })
}

pub(super) async fn unlock(ctx: &Ctx, peer: Peer, user: String) -> Result<AdminReply, String> {
    let user = admin_target(ctx, peer, &user, "unlock")?;
    let (store, u) = (ctx.store.clone(), user.clone());
    let had_state = tokio::task::spawn_blocking(move || recovery::unlock(&store, &u))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| logged(ctx, "unlock", e))?;
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
