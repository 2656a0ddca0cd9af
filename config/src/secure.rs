//! Checks that a trusted file or directory cannot have been written by
//! anyone but root or the helper's user.

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsecureReason {
    Symlink,
    NotRegularFile,
    NotDirectory,
    Owner {
        uid: u32,
        trusted: u32,
    },
    Writable {
        mode: u32,
    },
    /// The file is fine, the directory it is in is not.
    Directory {
        path: std::path::PathBuf,
        reason: Box<InsecureReason>,
    },
}

impl fmt::Display for InsecureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsecureReason::Symlink => write!(f, "it is a symbolic link; use the real path"),
            InsecureReason::NotRegularFile => write!(f, "it is not a regular file"),
            InsecureReason::NotDirectory => write!(f, "it is not a directory"),
            InsecureReason::Owner { uid, trusted } => write!(
                f,
                "owned by uid {uid}; it must be owned by root or uid {trusted} (chown)"
            ),
            InsecureReason::Writable { mode } => write!(
                f,
                "mode {mode:04o} lets group or others write it (chmod go-w)"
            ),
            InsecureReason::Directory { path, reason } => {
                write!(f, "its directory {}: {reason}", path.display())
            }
        }
    }
}

#[derive(Debug)]
pub enum OpenError {
    Io(io::Error),
    Insecure(InsecureReason),
}

fn check_owner_and_mode(meta: &Metadata, trusted_uid: u32) -> Result<(), InsecureReason> {
    if meta.uid() != 0 && meta.uid() != trusted_uid {
        return Err(InsecureReason::Owner {
            uid: meta.uid(),
            trusted: trusted_uid,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(InsecureReason::Writable { mode });
    }
    Ok(())
}

/// Checks an existing path (not following a final symlink): a regular file
/// or a directory owned by root or `trusted_uid`, not group/world-writable.
pub fn check_secure_path(path: &Path, trusted_uid: u32) -> Result<Metadata, OpenError> {
    let meta = std::fs::symlink_metadata(path).map_err(OpenError::Io)?;
    if meta.file_type().is_symlink() {
        return Err(OpenError::Insecure(InsecureReason::Symlink));
    }
    if !meta.is_file() && !meta.is_dir() {
        return Err(OpenError::Insecure(InsecureReason::NotRegularFile));
    }
    check_owner_and_mode(&meta, trusted_uid).map_err(OpenError::Insecure)?;
    Ok(meta)
}

/// Like [`check_secure_path`], and the path must be a directory.
pub fn check_secure_dir(path: &Path, trusted_uid: u32) -> Result<(), OpenError> {
    let meta = check_secure_path(path, trusted_uid)?;
    if !meta.is_dir() {
        return Err(OpenError::Insecure(InsecureReason::NotDirectory));
    }
    Ok(())
}

/// Opens a file for reading without following symlinks, then checks the
/// opened file itself (no window between check and use) and its directory.
pub fn open_secure_file(path: &Path, trusted_uid: u32) -> Result<File, OpenError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        check_secure_dir(parent, trusted_uid).map_err(|e| match e {
            OpenError::Insecure(reason) => OpenError::Insecure(InsecureReason::Directory {
                path: parent.to_owned(),
                reason: Box::new(reason),
            }),
            other => other,
        })?;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                OpenError::Insecure(InsecureReason::Symlink)
            } else {
                OpenError::Io(e)
            }
        })?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.is_file() {
        return Err(OpenError::Insecure(InsecureReason::NotRegularFile));
    }
    check_owner_and_mode(&meta, trusted_uid).map_err(OpenError::Insecure)?;
    Ok(file)
}

/// Durably replaces `path` with `bytes`: a new temporary file in the same
/// directory (never through a symlink), `mode` set exactly (the umask does
/// not apply) and `owner` when given, fsync, rename over `path`, fsync of
/// the directory. A reader sees the old file or the new one, never a mix;
/// on any error the temporary file is removed and `path` is untouched.
pub fn replace_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
        .to_string_lossy();
    // Unique within this process (the counter) and across processes (the pid).
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        }
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn me() -> u32 {
        unsafe { libc::geteuid() }
    }

    #[test]
    fn refuses_symlink_writable_fifo_and_wrong_owner() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(&good, "").unwrap();
        std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(open_secure_file(&good, me()).is_ok());

        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        assert!(matches!(
            open_secure_file(&link, me()),
            Err(OpenError::Insecure(InsecureReason::Symlink))
        ));

        let ww = dir.path().join("ww.toml");
        std::fs::write(&ww, "").unwrap();
        std::fs::set_permissions(&ww, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            open_secure_file(&ww, me()),
            Err(OpenError::Insecure(InsecureReason::Writable {
                mode: 0o666
            }))
        ));

        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            open_secure_file(&fifo, me()),
            Err(OpenError::Insecure(InsecureReason::NotRegularFile))
        ));

        if me() == 0 {
            std::os::unix::fs::chown(&good, Some(65534), None).unwrap();
            assert!(matches!(
                open_secure_file(&good, 0),
                Err(OpenError::Insecure(InsecureReason::Owner {
                    uid: 65534,
                    ..
                }))
            ));
        }

        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::chown(&good, Some(me()), None).unwrap();
        // The directory is at fault, and the error says which one.
        match open_secure_file(&good, me()) {
            Err(OpenError::Insecure(InsecureReason::Directory { path, reason })) => {
                assert_eq!(path, dir.path());
                assert!(matches!(*reason, InsecureReason::Writable { .. }));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replace_file_is_atomic_exact_and_leaves_nothing_behind() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        replace_file(&path, b"one", 0o640, None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);
        let me = std::fs::metadata(&path).unwrap();
        replace_file(&path, b"two", 0o600, Some((me.uid(), me.gid()))).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A failure (the target is a directory) leaves the old content and no temporary file.
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(sub.join("x"), b"keep").unwrap();
        assert!(replace_file(&sub, b"three", 0o600, None).is_err());
        assert_eq!(std::fs::read(sub.join("x")).unwrap(), b"keep");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
