//! The listening socket: the one systemd passed (socket activation), or one
//! the helper binds itself, replacing only a stale socket.

use std::io;
use std::os::fd::FromRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::UnixListener;

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

#[cfg(test)]
mod tests {
    use super::*;

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
