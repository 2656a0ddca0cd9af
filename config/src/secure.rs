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
    Owner { uid: u32, trusted: u32 },
    Writable { mode: u32 },
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
        check_secure_dir(parent, trusted_uid)?;
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
        assert!(matches!(
            open_secure_file(&good, me()),
            Err(OpenError::Insecure(InsecureReason::Writable { .. }))
        ));
    }
}
