//! Socket setup and the accept loop.

use crate::clock::Clock;
use crate::conn::Conn;
use crate::hashing::Hashers;
use crate::log::Logger;
use crate::peer::Peer;
use crate::store::Store;
use pushmfa_config::Config;
use pushmfa_protocol::ipc::{Request, Response};
use std::future::Future;
use std::io;
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

/// Everything a connection handler needs.
pub struct Ctx {
    pub cfg: Config,
    pub store: Store,
    pub log: Arc<Logger>,
    pub clock: Arc<dyn Clock>,
    /// Bounds concurrent Argon2id computations (each uses its memory cost).
    pub hashers: Hashers,
    pub helper_uid: u32,
}

impl Ctx {
    pub fn new(cfg: Config, store: Store, log: Arc<Logger>, clock: Arc<dyn Clock>) -> Ctx {
        let hashes = match cfg.recovery.max_parallel_hashes {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n as usize,
        };
        Ctx {
            cfg,
            store,
            log,
            clock,
            hashers: Hashers::new(hashes),
            helper_uid: nix::unistd::geteuid().as_raw(),
        }
    }
}

/// How long a new connection may take to send its first frame.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// The listening socket and, if we created it, its path (removed on exit).
pub struct Listener {
    pub listener: UnixListener,
    pub created: Option<PathBuf>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(p) = &self.created {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Takes the socket systemd passed (LISTEN_FDS, fd 3), if any.
fn systemd_listener() -> io::Result<Option<UnixListener>> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let fds: u32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if !pid_ok || fds == 0 {
        return Ok(None);
    }
    // SAFETY: systemd hands us fd 3 as an open listening socket (sd_listen_fds(3)).
    let std_listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(3) };
    std_listener.set_nonblocking(true)?;
    Ok(Some(UnixListener::from_std(std_listener)?))
}

/// Listens on the systemd socket, or binds `path` (mode 0666: every local
/// program may connect; each caller is then authorized by SO_PEERCRED).
pub fn listen(path: &Path) -> io::Result<Listener> {
    if let Some(listener) = systemd_listener()? {
        return Ok(Listener {
            listener,
            created: None,
        });
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{}: another helper is already listening", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(Listener {
        listener,
        created: Some(path.to_owned()),
    })
}

/// Serves connections until `shutdown` completes.
pub async fn serve(listener: &UnixListener, ctx: Arc<Ctx>, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(ctx.cfg.helper.max_connections as usize));
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
                tokio::spawn(async move {
                    handle(&ctx, stream).await;
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

async fn handle(ctx: &Ctx, stream: UnixStream) {
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
    let mut conn = Conn::new(stream);
    match conn.recv::<Request>(FIRST_FRAME_TIMEOUT).await {
        Ok(Request::Begin(begin)) => crate::auth::run(ctx, &mut conn, peer, begin).await,
        Ok(Request::Admin(req)) => crate::admin::run(ctx, &mut conn, peer, req).await,
        Ok(Request::Reply(_)) => {
            ctx.log
                .warning(&format!("uid {}: reply without a login; closing", peer.uid));
            let _ = conn
                .send(&Response::Refused {
                    message: "no login in progress".into(),
                })
                .await;
        }
        Err(e) => {
            ctx.log
                .warning(&format!("uid {}: bad first frame: {e}", peer.uid));
            let _ = conn
                .send(&Response::Refused {
                    message: format!("bad request: {e}"),
                })
                .await;
        }
    }
}
