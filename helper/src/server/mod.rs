//! The accept loop: one task per connection, which learns the caller
//! (SO_PEERCRED), enforces the connection caps, reads the first frame and
//! hands the connection to the login or the admin handlers.

pub mod limits;
pub mod listener;

use crate::conn::Conn;
use crate::ctx::Ctx;
use crate::peer::Peer;
use limits::PerUser;
use pushmfa_protocol::ipc::{Request, Response};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

/// How long a new connection may take to send its first frame.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// How often held-back log lines are summarised.
const LOG_SUMMARY_EVERY: Duration = Duration::from_secs(5);

/// Serves connections until `shutdown` completes.
pub async fn serve(listener: &UnixListener, ctx: Arc<Ctx>, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(ctx.cfg.helper.max_connections as usize));
    let per_user = PerUser::new(ctx.cfg.helper.max_connections_per_user as usize);
    let summaries = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(LOG_SUMMARY_EVERY);
            loop {
                every.tick().await;
                ctx.log.flush_suppressed();
            }
        })
    };
    let _stop_summaries = AbortOnDrop(summaries);
    tokio::pin!(shutdown);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                let ctx = ctx.clone();
                let per_user = per_user.clone();
                tokio::spawn(async move {
                    handle(&ctx, &per_user, stream).await;
                    drop(slot);
                });
            }
            Err(e) => {
                ctx.log.error(&format!("accept: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(ctx: &Ctx, per_user: &Arc<PerUser>, stream: UnixStream) {
    let peer = match stream.peer_cred() {
        Ok(c) => Peer {
            uid: c.uid(),
            pid: c.pid(),
        },
        Err(e) => {
            ctx.log
                .error(&format!("SO_PEERCRED failed, dropping connection: {e}"));
            return;
        }
    };
    let _user_slot = if peer.uid == 0 {
        None
    } else {
        match per_user.acquire(peer.uid) {
            Some(slot) => Some(slot),
            None => {
                ctx.log.warning_from(
                    peer.uid,
                    "connection cap",
                    &format!(
                        "uid {} already holds {} connections (helper.max_connections_per_user); closing one more",
                        peer.uid, per_user.max
                    ),
                );
                return;
            }
        }
    };
    let mut conn = Conn::new(stream);
    match conn.recv::<Request>(FIRST_FRAME_TIMEOUT).await {
        Ok(Request::Begin(begin)) => crate::login::run(ctx, &mut conn, peer, begin).await,
        Ok(Request::Admin(req)) => crate::admin::run(ctx, &mut conn, peer, req).await,
        Ok(Request::Reply(_)) => {
            ctx.log.warning_from(
                peer.uid,
                "reply without a login",
                &format!("uid {}: reply without a login; closing", peer.uid),
            );
            let _ = conn
                .send(&Response::Refused {
                    message: "no login in progress".into(),
                })
                .await;
        }
        Err(e) => {
            ctx.log.warning_from(
                peer.uid,
                "bad first frame",
                &format!("uid {}: bad first frame: {e}", peer.uid),
            );
            let _ = conn
                .send(&Response::Refused {
                    message: format!("bad request: {e}"),
                })
                .await;
        }
    }
}

/// Aborts a background task when the accept loop ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
