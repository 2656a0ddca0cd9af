//! Administrative calls from the `pushmfa` CLI: one handler per request.
//!
//! Root and the helper's own user may act on any user. Anyone else acts on
//! themself only, and changing existing factors needs a proof (so a
//! borrowed, unlocked terminal cannot silently re-enroll a user).

mod account;
mod devices;
mod enroll;
mod invite;
mod policy;
mod report;
mod target;

use crate::conn::Conn;
use crate::ctx::Ctx;
use crate::peer::Peer;
use pushmfa_protocol::ipc::{AdminReply, AdminRequest, Response};

/// Answers one admin request on this connection.
pub async fn run(ctx: &Ctx, conn: &mut Conn, peer: Peer, req: AdminRequest) {
    let result = match req {
        // Enrollment answers twice on this connection: the URI, then the result.
        AdminRequest::Enroll { user, proof } => enroll::run(ctx, conn, peer, user, proof).await,
        other => handle(ctx, conn, peer, other).await,
    };
    let response = match result {
        Ok(reply) => Response::AdminReply(reply),
        Err(message) => Response::Refused { message },
    };
    let _ = conn.send(&response).await;
}

async fn handle(
    ctx: &Ctx,
    conn: &mut Conn,
    peer: Peer,
    req: AdminRequest,
) -> Result<AdminReply, String> {
    match req {
        AdminRequest::Ping {} => Ok(AdminReply::Pong {
            version: env!("CARGO_PKG_VERSION").into(),
            helper_uid: ctx.helper_uid,
        }),
        AdminRequest::Status { user } => account::status(ctx, peer, user).await,
        AdminRequest::RecoveryGenerate { user, proof } => {
            account::generate(ctx, conn, peer, user, proof).await
        }
        AdminRequest::Unlock { user } => account::unlock(ctx, peer, user).await,
        AdminRequest::Devices { user } => devices::list(ctx, peer, user).await,
        AdminRequest::DeviceRemove {
            user,
            device,
            proof,
        } => devices::remove(ctx, conn, peer, user, device, proof).await,
        AdminRequest::DeviceRename { user, device, name } => {
            devices::rename(ctx, peer, user, device, name).await
        }
        AdminRequest::Reset { user } => account::reset(ctx, peer, user).await,
        AdminRequest::Report {} => report::report(ctx, peer).await,
        AdminRequest::Invite { user, days } => invite::invite(ctx, peer, user, days).await,
        AdminRequest::PolicyExplain {
            user,
            service,
            rhost,
        } => policy::explain(ctx, peer, user, service, rhost).await,
        AdminRequest::Enroll { .. } => Err("enrollment is handled on its own connection".into()),
    }
}
