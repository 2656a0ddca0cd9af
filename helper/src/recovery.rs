//! Recovery-code policy: generation, one attempt, status. All functions
//! block (file locks, fsync, Argon2id) and run on a blocking thread.
//!
//! An attempt takes the user's lock, checks lockout and backoff, computes
//! one Argon2id hash, compares it with every unused hash in constant time,
//! and persists the outcome (code removed, or failure counted) before it
//! returns. Holding the lock across all of that is what makes two parallel
//! logins with one code end with exactly one success.

use crate::codes::{self, CodeError, HASH_LEN, HashParams, SALT_LEN, Scratch};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use pushmfa_config::Recovery;
use pushmfa_protocol::ipc::UserStatus;
use pushmfa_state::{Failures, RecoverySet, Store, StoreError, UserName, UserState};
use zeroize::Zeroizing;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Accepted {
        codes_left: u32,
    },
    Wrong,
    /// Too many recent failures: retry after this many seconds.
    Backoff {
        retry_after: u64,
    },
    /// `lockout_after` consecutive failures: an admin must unlock.
    LockedOut,
    /// No codes (or no such user): the input was hashed anyway for timing.
    NotEnrolled,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Code(#[from] CodeError),
    #[error("internal error: {0}")]
    Internal(String),
}

pub fn params(cfg: &Recovery) -> HashParams {
    HashParams {
        memory_kib: cfg.argon2_memory_kib,
        iterations: cfg.argon2_iterations,
        parallelism: cfg.argon2_parallelism,
    }
}

/// Seconds to wait before the next attempt is accepted, if any.
pub fn backoff_remaining(f: &Failures, cfg: &Recovery, now: u64) -> Option<u64> {
    if f.consecutive < cfg.backoff_after {
        return None;
    }
    let exp = (f.consecutive - cfg.backoff_after).min(30);
    let wait = (1u64 << exp).min(cfg.backoff_max_secs);
    let retry_at = f.last_failure_at.unwrap_or(0).saturating_add(wait);
    (now < retry_at).then(|| retry_at - now)
}

/// Why no code (recovery, offline or invitation: one counter) may be
/// tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// `lockout_after` consecutive failures: an admin must unlock.
    LockedOut,
    /// Too many recent failures: retry after this many seconds.
    Backoff { retry_after: u64 },
}

/// Whether the failure counter lets a code be tried at `now`.
pub fn blocked(f: &Failures, cfg: &Recovery, now: u64) -> Option<Blocked> {
    if f.consecutive >= cfg.lockout_after {
        return Some(Blocked::LockedOut);
    }
    backoff_remaining(f, cfg, now).map(|retry_after| Blocked::Backoff { retry_after })
}

/// Counts `n` wrong codes at `now`.
pub fn count_failures(f: &mut Failures, n: u32, now: u64) {
    f.consecutive = f.consecutive.saturating_add(n);
    f.last_failure_at = Some(now);
}

/// A user's enrollment summary from their state.
pub fn status_of(state: &UserState, user: &str, cfg: &Recovery, now: u64) -> UserStatus {
    let f = &state.failures;
    UserStatus {
        user: user.to_owned(),
        enrolled: state.enrolled(),
        devices: state.devices.len() as u32,
        codes_left: state.recovery.as_ref().map_or(0, |r| r.unused.len() as u32),
        codes_generated_at: state.recovery.as_ref().map(|r| r.generated_at),
        consecutive_failures: f.consecutive,
        locked_out: f.consecutive >= cfg.lockout_after,
        retry_after_secs: backoff_remaining(f, cfg, now),
    }
}

fn decode_hashes(
    set: &RecoverySet,
    store: &Store,
    user: &UserName,
) -> Result<(Vec<u8>, Vec<[u8; HASH_LEN]>), StoreError> {
    let corrupt = |detail: &str| StoreError::Corrupt {
        path: store.state_path(user),
        detail: detail.to_owned(),
    };
    let salt = B64
        .decode(&set.salt)
        .map_err(|_| corrupt("salt is not base64"))?;
    if salt.len() != SALT_LEN {
        return Err(corrupt("salt has the wrong length"));
    }
    let hashes = set
        .unused
        .iter()
        .map(|h| {
            B64.decode(h)
                .ok()
                .and_then(|b| <[u8; HASH_LEN]>::try_from(b).ok())
                .ok_or_else(|| corrupt("a code hash is malformed"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((salt, hashes))
}

/// Checks one normalized code for `user` (None: unknown or unsupported
/// name, which gets the same hashing work and a `NotEnrolled` answer).
pub fn attempt(
    store: &Store,
    user: Option<&UserName>,
    code: &str,
    cfg: &Recovery,
    now: u64,
    scratch: &mut Scratch,
) -> Result<Attempt, RecoveryError> {
    let Some(user) = user else {
        return dummy_attempt(code, cfg, scratch);
    };
    let lock = store.lock(user)?;
    let Some(mut state) = store.load(user)? else {
        return dummy_attempt(code, cfg, scratch);
    };
    let Some(set) = state.recovery.clone() else {
        return dummy_attempt(code, cfg, scratch);
    };
    match blocked(&state.failures, cfg, now) {
        Some(Blocked::LockedOut) => return Ok(Attempt::LockedOut),
        Some(Blocked::Backoff { retry_after }) => return Ok(Attempt::Backoff { retry_after }),
        None => {}
    }
    let (salt, hashes) = decode_hashes(&set, store, user)?;
    let stored_params = HashParams {
        memory_kib: set.memory_kib,
        iterations: set.iterations,
        parallelism: set.parallelism,
    };
    let hash = codes::hash_code_in(code, &salt, stored_params, scratch)?;
    let result = match codes::find_match(&hash, &hashes) {
        Some(i) => {
            let mut set = set;
            set.unused.remove(i);
            let codes_left = set.unused.len() as u32;
            state.recovery = Some(set);
            state.failures = Failures::default();
            Attempt::Accepted { codes_left }
        }
        None => {
            count_failures(&mut state.failures, 1, now);
            Attempt::Wrong
        }
    };
    // Success is only reported once the used code is gone from disk.
    store.save(&lock, user, &state)?;
    Ok(result)
}

fn dummy_attempt(
    code: &str,
    cfg: &Recovery,
    scratch: &mut Scratch,
) -> Result<Attempt, RecoveryError> {
    let mut salt = [0u8; SALT_LEN];
    codes::random_bytes(&mut salt)?;
    codes::hash_code_in(code, &salt, params(cfg), scratch)?;
    Ok(Attempt::NotEnrolled)
}

/// Replaces all of the user's codes with a new generation and returns them
/// in display form; resets the failure counter.
pub fn generate(
    store: &Store,
    user: &UserName,
    cfg: &Recovery,
    now: u64,
    scratch: &mut Scratch,
) -> Result<Vec<Zeroizing<String>>, RecoveryError> {
    let lock = store.lock(user)?;
    let mut state = store.load(user)?.unwrap_or_else(UserState::new);
    let mut salt = [0u8; SALT_LEN];
    codes::random_bytes(&mut salt)?;
    let p = params(cfg);
    let mut shown = Vec::new();
    let mut unused = Vec::new();
    for _ in 0..cfg.code_count {
        let code = codes::generate_code()?;
        let normalized = codes::normalize(&code)?;
        unused.push(B64.encode(*codes::hash_code_in(&normalized, &salt, p, scratch)?));
        shown.push(code);
    }
    state.recovery = Some(RecoverySet {
        generated_at: now,
        salt: B64.encode(salt),
        memory_kib: p.memory_kib,
        iterations: p.iterations,
        parallelism: p.parallelism,
        unused,
    });
    state.failures = Failures::default();
    store.save(&lock, user, &state)?;
    Ok(shown)
}

/// Clears the failure counter (admin unlock). Returns false if the user has no state.
pub fn unlock(store: &Store, user: &UserName) -> Result<bool, RecoveryError> {
    let lock = store.lock(user)?;
    let Some(mut state) = store.load(user)? else {
        return Ok(false);
    };
    state.failures = Failures::default();
    store.save(&lock, user, &state)?;
    Ok(true)
}

pub fn status(
    store: &Store,
    user: &UserName,
    cfg: &Recovery,
    now: u64,
) -> Result<UserStatus, RecoveryError> {
    let state = store.load(user)?.unwrap_or_else(UserState::new);
    Ok(status_of(&state, user.as_str(), cfg, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Recovery {
        Recovery {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            ..Recovery::default()
        }
    }

    fn setup() -> (tempfile::TempDir, Store, UserName) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), nix::unistd::geteuid().as_raw()).unwrap();
        (dir, store, UserName::parse("alice").unwrap())
    }

    /// One attempt with the test configuration and a fresh scratch buffer.
    fn try_code(store: &Store, u: &UserName, code: &Zeroizing<String>, now: u64) -> Attempt {
        attempt(store, Some(u), code, &cfg(), now, &mut Scratch::default()).unwrap()
    }

    fn norm(c: &str) -> Zeroizing<String> {
        codes::normalize(c).unwrap()
    }

    #[test]
    fn code_works_once() {
        let (_d, store, u) = setup();
        let codes = generate(&store, &u, &cfg(), 1000, &mut Scratch::default()).unwrap();
        assert_eq!(codes.len(), 10);
        let c = norm(&codes[3]);
        assert_eq!(
            try_code(&store, &u, &c, 1001),
            Attempt::Accepted { codes_left: 9 }
        );
        assert_eq!(try_code(&store, &u, &c, 1002), Attempt::Wrong);
        // Other codes still work, and the success reset the counter.
        assert_eq!(
            try_code(&store, &u, &norm(&codes[0]), 1003),
            Attempt::Accepted { codes_left: 8 }
        );
    }

    #[test]
    fn regenerating_replaces_old_codes() {
        let (_d, store, u) = setup();
        let old = generate(&store, &u, &cfg(), 1, &mut Scratch::default()).unwrap();
        let new = generate(&store, &u, &cfg(), 2, &mut Scratch::default()).unwrap();
        assert_eq!(try_code(&store, &u, &norm(&old[0]), 3), Attempt::Wrong);
        assert_eq!(
            try_code(&store, &u, &norm(&new[0]), 4),
            Attempt::Accepted { codes_left: 9 }
        );
    }

    #[test]
    fn backoff_then_lockout_with_injected_time() {
        let (_d, store, u) = setup();
        let codes = generate(&store, &u, &cfg(), 0, &mut Scratch::default()).unwrap();
        let wrong = norm("0000-0000-0000-0000");
        let mut now = 100;
        for i in 0..cfg().lockout_after {
            // Each attempt after backoff_after failures must wait 2^(n-3) s.
            if let Some(wait) = status(&store, &u, &cfg(), now).unwrap().retry_after_secs {
                assert_eq!(
                    try_code(&store, &u, &wrong, now),
                    Attempt::Backoff { retry_after: wait }
                );
                assert_eq!(wait, 1 << (i - cfg().backoff_after));
                now += wait;
            }
            assert_eq!(try_code(&store, &u, &wrong, now), Attempt::Wrong, "try {i}");
        }
        let st = status(&store, &u, &cfg(), now + 10_000).unwrap();
        assert!(st.locked_out);
        assert_eq!(st.consecutive_failures, 10);
        // Locked: even a valid code is refused, and it is not consumed.
        let good = norm(&codes[0]);
        assert_eq!(
            try_code(&store, &u, &good, now + 10_000),
            Attempt::LockedOut
        );
        assert!(unlock(&store, &u).unwrap());
        assert_eq!(
            try_code(&store, &u, &good, now + 10_001),
            Attempt::Accepted { codes_left: 9 }
        );
    }

    #[test]
    fn unknown_and_unenrolled_users() {
        let (_d, store, u) = setup();
        let c = norm("0000-0000-0000-0000");
        assert_eq!(
            attempt(&store, None, &c, &cfg(), 0, &mut Scratch::default()).unwrap(),
            Attempt::NotEnrolled
        );
        assert_eq!(try_code(&store, &u, &c, 0), Attempt::NotEnrolled);
        assert!(!status(&store, &u, &cfg(), 0).unwrap().enrolled);
    }

    #[test]
    fn parallel_attempts_with_one_code_have_one_winner() {
        let (_d, store, u) = setup();
        let codes = generate(&store, &u, &cfg(), 0, &mut Scratch::default()).unwrap();
        for code in codes.iter().take(5) {
            let c = norm(code);
            let results: Vec<Attempt> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..4)
                    .map(|_| s.spawn(|| try_code(&store, &u, &c, 1)))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let wins = results
                .iter()
                .filter(|r| matches!(r, Attempt::Accepted { .. }))
                .count();
            assert_eq!(wins, 1, "{results:?}");
            unlock(&store, &u).unwrap();
        }
    }
}
