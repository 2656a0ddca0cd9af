//! Socket setup and the accept loop.

use crate::clock::Clock;
use crate::conn::Conn;
use crate::hashing::Hashers;
use crate::hostkey::HostKey;
use crate::log::Logger;
use crate::peer::Peer;
use crate::relay_client::RelayClient;
use pushmfa_config::Config;
use pushmfa_protocol::ipc::{Request, Response};
use pushmfa_state::Store;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::FromRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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
    /// Signs challenges; devices learn its public key at enrollment.
    pub host_key: Arc<HostKey>,
    /// The push backend, when `backend.kind = "relay"`.
    pub relay: Option<RelayClient>,
    /// Per-user push bookkeeping (outstanding push, rate limit).
    pub push: crate::push::PushBook,
}

impl Ctx {
    pub fn new(
        cfg: Config,
        store: Store,
        log: Arc<Logger>,
        clock: Arc<dyn Clock>,
        host_key: Arc<HostKey>,
        relay: Option<RelayClient>,
    ) -> Ctx {
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
            host_key,
            relay,
            push: crate::push::PushBook::default(),
        }
    }
}

/// Counts open connections per non-root uid.
pub struct PerUser {
    open: Mutex<HashMap<u32, usize>>,
    max: usize,
}

/// One counted connection; released on drop.
pub struct UserSlot {
    owner: Arc<PerUser>,
    uid: u32,
}

impl PerUser {
    pub fn new(max: usize) -> Arc<PerUser> {
        Arc::new(PerUser {
            open: Mutex::new(HashMap::new()),
            max,
        })
    }

    /// A slot for `uid`, or None if it already holds `max` connections.
    pub fn acquire(self: &Arc<Self>, uid: u32) -> Option<UserSlot> {
        let mut open = self.open.lock().ok()?;
        let n = open.entry(uid).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            owner: self.clone(),
            uid,
        })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.owner.open.lock() {
            if let Some(n) = open.get_mut(&self.uid) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&self.uid);
                }
            }
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
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        // Only ever remove a stale socket, never a file that is in the way.
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; check helper.socket",
                    path.display()
                ),
            ));
        }
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
    let per_user = PerUser::new(ctx.cfg.helper.max_connections_per_user as usize);
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
                ctx.log.warning(&format!(
                    "uid {} already holds {} connections (helper.max_connections_per_user); closing one more",
                    peer.uid, per_user.max
                ));
                return;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_slots_are_capped_and_released() {
        let p = PerUser::new(2);
        let a = p.acquire(1000).unwrap();
        let _b = p.acquire(1000).unwrap();
        assert!(p.acquire(1000).is_none());
        assert!(p.acquire(1001).is_some(), "another user is not affected");
        drop(a);
        assert!(p.acquire(1000).is_some());
    }

    #[tokio::test]
    async fn never_removes_a_file_that_is_not_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("important");
        std::fs::write(&path, "keep me").unwrap();
        let err = listen(&path).err().unwrap();
        assert!(err.to_string().contains("is not a socket"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    }

    #[tokio::test]
    async fn replaces_a_stale_socket_but_not_a_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        let live = listen(&path).unwrap();
        let err = listen(&path).err().unwrap();
        assert!(err.to_string().contains("already listening"), "{err}");
        // A socket left behind by a crash (listener gone, file still there).
        let stale = std::os::unix::net::UnixListener::bind(dir.path().join("s.sock")).unwrap();
        drop(stale);
        assert!(listen(&dir.path().join("s.sock")).is_ok());
        drop(live);
        assert!(!path.exists(), "socket not removed on shutdown");
    }
}
