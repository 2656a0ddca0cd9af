//! Per-user state owned by the helper (read by `pushmfa doctor` too).
//!
//! ```text
//! <state_dir>/users/<user>.json   the state, replaced atomically
//! <state_dir>/locks/<user>.lock   flock'ed for every read-modify-write; never renamed
//! ```
//!
//! Every open checks the directories and the file: no symlinks, owned by
//! the helper (or root), not writable by group or others. A corrupt,
//! oversized or insecure file is reported, never silently reset. Writes go
//! temp file -> fsync -> rename -> fsync(directory) while the lock is held.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use nix::fcntl::{Flock, FlockArg};
use pushmfa_config::{InsecureReason, OpenError, check_secure_dir, open_secure_file, replace_file};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A state file larger than this is refused as corrupt.
pub const MAX_STATE_LEN: u64 = 64 * 1024;
pub const STATE_VERSION: u32 = 1;

/// Parses and checks the bytes of a state file (size, JSON, version, the
/// stored hashing parameters); the error says what is wrong.
pub fn parse_state(bytes: &[u8]) -> Result<UserState, String> {
    if bytes.len() as u64 > MAX_STATE_LEN {
        return Err(format!("larger than {MAX_STATE_LEN} bytes"));
    }
    let state: UserState = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if state.version != STATE_VERSION {
        return Err(format!("unsupported version {}", state.version));
    }
    if let Some(r) = &state.recovery {
        r.check()?;
    }
    Ok(state)
}

/// A user name that is safe to use as a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserName(String);

impl UserName {
    /// Letters, digits, `_ . @ -`, at most 64 bytes, not starting with `.`
    /// or `-`. Other names cannot be enrolled (and are treated as unknown).
    pub fn parse(name: &str) -> Option<UserName> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with(['.', '-'])
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'));
        ok.then(|| UserName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserState {
    pub version: u32,
    pub recovery: Option<RecoverySet>,
    #[serde(default)]
    pub failures: Failures,
    /// Enrolled push devices.
    #[serde(default)]
    pub devices: Vec<Device>,
    /// After a fraud report, no pushes until this Unix time.
    #[serde(default)]
    pub push_muted_until: Option<u64>,
    /// The last login that passed (for `pushmfa report`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<LastSuccess>,
    /// A one-time invitation to enroll at a first login (`pushmfa invite`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation: Option<Invitation>,
}

/// An invitation: the SHA-256 of the normalized code (it has 80 random
/// bits, so a fast hash is enough), and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invitation {
    /// base64 of SHA-256 of the normalized code.
    pub hash: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// How and when a user last passed the second factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastSuccess {
    /// push, offline, recovery-code, or failmode-safe (no second factor).
    pub method: String,
    /// Unix seconds.
    pub at: u64,
}

/// An enrolled device: its public key and how to reach it through the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// base64url of the 16-byte device id (from its public key).
    pub id: String,
    pub name: String,
    /// base64url of the uncompressed SEC1 P-256 public key.
    pub public_key: String,
    pub channel_id: String,
    /// The helper's bearer token for the channel (this file is 0600).
    pub channel_token: String,
    pub added_at: u64,
    /// Protocol v2: base64url of the device's P-256 encryption key, which
    /// challenges are sealed to. Absent: a v1 device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<String>,
    /// base64url of the device's passkey (protocol::passkey): it can prove
    /// its user was verified. Absent: it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey: Option<String>,
    /// base64url of the 32-byte key for offline approval codes
    /// (protocol::offline), derived at enrollment from the secret the QR
    /// code carried. Absent: enrolled before offline approval existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_key: Option<String>,
}

impl Device {
    /// The protocol the device speaks: 2 when it registered an encryption
    /// key, else 1.
    pub fn protocol(&self) -> u8 {
        if self.encryption_key.is_some() { 2 } else { 1 }
    }
}

impl UserState {
    pub fn new() -> UserState {
        UserState {
            version: STATE_VERSION,
            ..Default::default()
        }
    }

    /// Enrolled means the user has a second factor set up (codes, even if
    /// all are used up; devices come with push).
    pub fn enrolled(&self) -> bool {
        self.recovery.is_some() || !self.devices.is_empty()
    }
}

/// One generation of recovery codes: their Argon2id hashes under one salt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySet {
    pub generated_at: u64,
    /// base64 of the per-user salt.
    pub salt: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// base64 of each unused code's hash; a used code's hash is removed.
    pub unused: Vec<String>,
}

/// Bounds on stored Argon2id parameters (the configuration's own ranges):
/// a file that asks for more would make the helper allocate it, and one
/// absurd value (4,000,000,000 KiB) would abort it mid-login for everyone.
pub const ARGON2_MEMORY_KIB: std::ops::RangeInclusive<u32> = 8..=4 * 1024 * 1024;
pub const ARGON2_ITERATIONS: std::ops::RangeInclusive<u32> = 1..=100;
pub const ARGON2_PARALLELISM: std::ops::RangeInclusive<u32> = 1..=16;
/// More stored code hashes than any generation makes.
pub const MAX_STORED_CODES: usize = 100;

impl RecoverySet {
    /// Whether the stored parameters are ones the helper may use; why not.
    pub fn check(&self) -> Result<(), String> {
        let out_of = |what: &str, v: u32, r: &std::ops::RangeInclusive<u32>| {
            format!(
                "recovery.{what} = {v} is out of range {}..={}",
                r.start(),
                r.end()
            )
        };
        if !ARGON2_MEMORY_KIB.contains(&self.memory_kib) {
            return Err(out_of("memory_kib", self.memory_kib, &ARGON2_MEMORY_KIB));
        }
        if !ARGON2_ITERATIONS.contains(&self.iterations) {
            return Err(out_of("iterations", self.iterations, &ARGON2_ITERATIONS));
        }
        if !ARGON2_PARALLELISM.contains(&self.parallelism) {
            return Err(out_of("parallelism", self.parallelism, &ARGON2_PARALLELISM));
        }
        if self.memory_kib < 8 * self.parallelism {
            return Err("recovery.memory_kib is below 8 KiB per lane".into());
        }
        if self.unused.len() > MAX_STORED_CODES {
            return Err(format!(
                "{} stored codes (at most {MAX_STORED_CODES})",
                self.unused.len()
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failures {
    pub consecutive: u32,
    pub last_failure_at: Option<u64>,
}

#[derive(Debug)]
pub enum StoreError {
    Io {
        path: PathBuf,
        error: io::Error,
    },
    Insecure {
        path: PathBuf,
        reason: InsecureReason,
    },
    Corrupt {
        path: PathBuf,
        detail: String,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            StoreError::Insecure { path, reason } => {
                write!(
                    f,
                    "{}: insecure, refusing to use it: {reason}",
                    path.display()
                )
            }
            StoreError::Corrupt { path, detail } => write!(
                f,
                "{}: corrupt state ({detail}); inspect it, then restore it or reset the user",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |error| StoreError::Io {
        path: path.to_owned(),
        error,
    }
}

fn open_err(path: &Path, e: OpenError) -> StoreError {
    match e {
        OpenError::Io(error) => StoreError::Io {
            path: path.to_owned(),
            error,
        },
        OpenError::Insecure(reason) => StoreError::Insecure {
            path: path.to_owned(),
            reason,
        },
    }
}

/// Holds a user's exclusive lock until dropped.
pub struct UserLock {
    _lock: Flock<File>,
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    owner_uid: u32,
}

impl Store {
    /// Opens (creating if missing, mode 0700) the state directory of a
    /// helper running as `owner_uid`, and checks it.
    pub fn open(root: &Path, owner_uid: u32) -> Result<Store, StoreError> {
        let store = Store {
            root: root.to_owned(),
            owner_uid,
        };
        for dir in [store.root.clone(), store.users_dir(), store.locks_dir()] {
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&dir)(e)),
            }
        }
        store.check_dirs()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn users_dir(&self) -> PathBuf {
        self.root.join("users")
    }

    fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub fn state_path(&self, user: &UserName) -> PathBuf {
        self.users_dir().join(format!("{user}.json"))
    }

    /// Every user with a state file, sorted.
    pub fn user_names(&self) -> Result<Vec<UserName>, StoreError> {
        self.check_dirs()?;
        let dir = self.users_dir();
        let mut names: Vec<UserName> = std::fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.strip_suffix(".json")?.to_owned();
                UserName::parse(&name)
            })
            .collect();
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(names)
    }

    fn check_dirs(&self) -> Result<(), StoreError> {
        for dir in [self.root.clone(), self.users_dir(), self.locks_dir()] {
            check_secure_dir(&dir, self.owner_uid).map_err(|e| open_err(&dir, e))?;
        }
        Ok(())
    }

    /// Takes the user's exclusive lock (blocking until it is free).
    pub fn lock(&self, user: &UserName) -> Result<UserLock, StoreError> {
        self.check_dirs()?;
        let path = self.locks_dir().join(format!("{user}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    StoreError::Insecure {
                        path: path.clone(),
                        reason: InsecureReason::Symlink,
                    }
                } else {
                    io_err(&path)(e)
                }
            })?;
        let meta = file.metadata().map_err(io_err(&path))?;
        if !meta.is_file() {
            return Err(StoreError::Insecure {
                path,
                reason: InsecureReason::NotRegularFile,
            });
        }
        if meta.uid() != 0 && meta.uid() != self.owner_uid {
            return Err(StoreError::Insecure {
                path,
                reason: InsecureReason::Owner {
                    uid: meta.uid(),
                    trusted: self.owner_uid,
                },
            });
        }
        let lock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| StoreError::Io {
                path: path.clone(),
                error: io::Error::from(errno),
            })?;
        Ok(UserLock { _lock: lock })
    }

    /// Reads the user's state; `None` if the user has none.
    pub fn load(&self, user: &UserName) -> Result<Option<UserState>, StoreError> {
        self.check_dirs()?;
        let path = self.state_path(user);
        let file = match open_secure_file(&path, self.owner_uid) {
            Ok(f) => f,
            Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(open_err(&path, e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_STATE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err(&path))?;
        let state = parse_state(&bytes).map_err(|detail| StoreError::Corrupt { path, detail })?;
        Ok(Some(state))
    }

    /// Durably replaces the user's state. Requires the user's lock.
    pub fn save(
        &self,
        _lock: &UserLock,
        user: &UserName,
        state: &UserState,
    ) -> Result<(), StoreError> {
        self.check_dirs()?;
        let path = self.state_path(user);
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        replace_file(&path, &bytes, 0o600, None).map_err(io_err(&path))?;
        Ok(())
    }

    /// Deletes the user's state (admin reset).
    pub fn remove(&self, _lock: &UserLock, user: &UserName) -> Result<bool, StoreError> {
        self.check_dirs()?;
        let path = self.state_path(user);
        match fs::remove_file(&path) {
            Ok(()) => {
                File::open(self.users_dir())
                    .and_then(|d| d.sync_all())
                    .map_err(io_err(&path))?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn me() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    fn alice() -> UserName {
        UserName::parse("alice").unwrap()
    }

    #[test]
    fn user_names() {
        for ok in ["alice", "a.b-c_d@example.org", "u1", "x"] {
            assert!(UserName::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "../etc/passwd",
            "a/b",
            "a b",
            "é",
            &"a".repeat(65),
            "a\0b",
        ] {
            assert!(UserName::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state"), me()).unwrap();
        assert_eq!(store.load(&alice()).unwrap(), None);
        let mut s = UserState::new();
        s.failures.consecutive = 2;
        let lock = store.lock(&alice()).unwrap();
        store.save(&lock, &alice(), &s).unwrap();
        assert_eq!(store.load(&alice()).unwrap(), Some(s));
        let mode = fs::metadata(store.state_path(&alice())).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(store.users_dir()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp file left behind");
    }

    #[test]
    fn corrupt_truncated_oversized_and_garbage_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state"), me()).unwrap();
        let path = store.state_path(&alice());
        let good = serde_json::to_string(&UserState::new()).unwrap();
        for bad in [
            "".to_string(),
            "\u{0}\u{1}\u{2}".to_string(),
            good[..good.len() / 2].to_string(),
            r#"{"version":2,"recovery":null}"#.to_string(),
            r#"{"version":1,"recovery":null,"evil":true}"#.to_string(),
            format!(
                "{{\"version\":1,\"recovery\":null,\"pad\":\"{}\"}}",
                "x".repeat(70_000)
            ),
        ] {
            fs::write(&path, &bad).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let e = store.load(&alice()).unwrap_err();
            assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
            // Reported, not reset: the file is still there, unchanged.
            assert_eq!(fs::read_to_string(&path).unwrap(), bad);
        }
    }

    #[test]
    fn insecure_files_and_dirs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let store = Store::open(&root, me()).unwrap();
        let path = store.state_path(&alice());
        let lock = store.lock(&alice()).unwrap();
        store.save(&lock, &alice(), &UserState::new()).unwrap();
        drop(lock);

        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            store.load(&alice()),
            Err(StoreError::Insecure { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            store.load(&alice()),
            Err(StoreError::Insecure { .. })
        ));
        assert!(matches!(
            store.lock(&alice()),
            Err(StoreError::Insecure { .. })
        ));
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();

        let real = dir.path().join("elsewhere.json");
        fs::rename(&path, &real).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        assert!(matches!(
            store.load(&alice()),
            Err(StoreError::Insecure {
                reason: InsecureReason::Symlink,
                ..
            })
        ));
        fs::remove_file(&path).unwrap();
        fs::rename(&real, &path).unwrap();
        assert!(store.load(&alice()).unwrap().is_some());
    }
}
