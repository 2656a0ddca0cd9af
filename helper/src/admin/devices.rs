//! A user's enrolled devices: list, remove (with its relay channel), rename.

use super::target::target;
use crate::conn::Conn;
use crate::ctx::Ctx;
use crate::log::Q;
use crate::peer::Peer;
use crate::proof::require_proof;
use crate::user_state::{self, with_state};
use pushmfa_protocol::ipc::{AdminReply, DeviceInfo, Proof};
use pushmfa_state::Device;

pub(super) async fn list(
    ctx: &Ctx,
    peer: Peer,
    user: Option<String>,
) -> Result<AdminReply, String> {
    let user = target(ctx, peer, user).await?;
    let state = user_state::load(ctx, &user)
        .await
        .map_err(|e| e.to_string())?;
    Ok(AdminReply::DeviceList {
        user: user.to_string(),
        devices: state
            .devices
            .iter()
            .map(|d| DeviceInfo {
                id: d.id.clone(),
                name: d.name.clone(),
                added_at: d.added_at,
                protocol: d.protocol(),
                passkey: d.passkey.is_some(),
                offline: d.offline_key.is_some(),
            })
            .collect(),
    })
}

fn find_device(devices: &[Device], which: &str) -> Result<usize, String> {
    let hits: Vec<usize> = devices
        .iter()
        .enumerate()
        .filter(|(_, d)| d.name == which || (which.len() >= 4 && d.id.starts_with(which)))
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => Err(format!("no device {which:?} (see pushmfa devices list)")),
        _ => Err(format!("{which:?} matches several devices: use its id")),
    }
}

pub(super) async fn remove(
    ctx: &Ctx,
    conn: &mut Conn,
    peer: Peer,
    user: Option<String>,
    device: String,
    proof: Option<Proof>,
) -> Result<AdminReply, String> {
    let user = target(ctx, peer, user).await?;
    require_proof(ctx, conn, peer, &user, proof, "remove a device").await?;
    let removed = with_state(ctx, &user, move |s| {
        let i = find_device(&s.devices, &device)?;
        Ok(s.devices.remove(i))
    })
    .await?;
    if let Some(relay) = &ctx.relay {
        if let Err(e) = relay
            .delete_channel(&removed.channel_id, &removed.channel_token)
            .await
        {
            ctx.log.warning(&format!(
                "device removed, but its relay channel was not: error={}",
                Q(&e.to_string())
            ));
        }
    }
    ctx.log.info(&format!(
        "device removed user={} device={} by_uid={}",
        Q(user.as_str()),
        Q(&removed.name),
        peer.uid
    ));
    Ok(AdminReply::Done {
        message: format!("removed device {} ({})", removed.name, removed.id),
    })
}

pub(super) async fn rename(
    ctx: &Ctx,
    peer: Peer,
    user: Option<String>,
    device: String,
    name: String,
) -> Result<AdminReply, String> {
    let user = target(ctx, peer, user).await?;
    let name = pushmfa_protocol::text::sanitize(name.trim(), false);
    if name.is_empty() || name.len() > 64 {
        return Err("a device name has 1 to 64 characters".into());
    }
    let new = name.clone();
    let old = with_state(ctx, &user, move |s| {
        let i = find_device(&s.devices, &device)?;
        Ok(std::mem::replace(&mut s.devices[i].name, new))
    })
    .await?;
    ctx.log.info(&format!(
        "device renamed user={} {} -> {} by_uid={}",
        Q(user.as_str()),
        Q(&old),
        Q(&name),
        peer.uid
    ));
    Ok(AdminReply::Done {
        message: format!("renamed {old} to {name}"),
    })
}
