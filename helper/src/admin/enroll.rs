//! `pushmfa enroll`: who may enroll for whom, the proof an enrolled user
//! gives first, and the two answers on the connection (the URI for the QR
//! code, then the result). The enrollment itself is `crate::enrollment`.

use super::target::target;
use crate::conn::Conn;
use crate::ctx::Ctx;
use crate::enrollment;
use crate::log::Q;
use crate::peer::Peer;
use crate::proof::require_proof;
use pushmfa_protocol::ipc::{AdminReply, Proof, Response};

/// Starts an enrollment, sends the URI for the QR code, and waits for the
/// device to register through the relay.
pub(super) async fn run(
    ctx: &Ctx,
    conn: &mut Conn,
    peer: Peer,
    user: Option<String>,
    proof: Option<Proof>,
) -> Result<AdminReply, String> {
    if ctx.relay.is_none() {
        return Err(
            "no push backend is configured: set [backend] kind = \"relay\" and url in pushmfa.toml"
                .into(),
        );
    }
    let user = target(ctx, peer, user).await?;
    require_proof(ctx, conn, peer, &user, proof, "add a device").await?;
    let started = enrollment::start(ctx, &user).await?;
    conn.send(&Response::AdminReply(AdminReply::EnrollStarted {
        uri: started.uri.to_string(),
        expires_in: started.ttl,
    }))
    .await
    .map_err(|e| e.to_string())?;
    let done = enrollment::finish(ctx, started, &user).await?;
    ctx.log.info(&format!(
        "device enrolled user={} device={} id={} protocol={} by_uid={} new_codes={}",
        Q(user.as_str()),
        Q(&done.device_name),
        done.device_id,
        done.protocol,
        peer.uid,
        done.codes.len()
    ));
    Ok(AdminReply::Enrolled {
        user: user.to_string(),
        device_id: done.device_id,
        device_name: done.device_name,
        codes: done.codes,
    })
}
