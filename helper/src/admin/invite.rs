//! `pushmfa invite`: a one-time code a user types at a first login before
//! enrolling there (`policy.enroll_invitation`).

use super::target::admin_target;
use crate::ctx::Ctx;
use crate::invitations;
use crate::log::Q;
use crate::peer::Peer;
use pushmfa_protocol::ipc::AdminReply;

pub(super) async fn invite(
    ctx: &Ctx,
    peer: Peer,
    user: String,
    days: u32,
) -> Result<AdminReply, String> {
    let user = admin_target(ctx, peer, &user, "invite")?;
    if !(1..=90).contains(&days) {
        return Err("an invitation lasts 1 to 90 days".into());
    }
    let expires_at = ctx.clock.now_unix() + u64::from(days) * 86_400;
    let (store, u) = (ctx.store.clone(), user.clone());
    let code = tokio::task::spawn_blocking(move || invitations::create(&store, &u, expires_at))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    ctx.log.warning(&format!(
        "invitation created user={} days={days} by_uid={} (first-login enrollment)",
        Q(user.as_str()),
        peer.uid
    ));
    Ok(AdminReply::Invitation {
        user: user.to_string(),
        code,
        expires_at,
    })
}
