//! One-time invitations to enroll at a first login (`pushmfa invite`):
//! recovery-code shaped (80 random bits), stored as SHA-256 of the
//! normalized code with an expiry, used up by the first login that types
//! it. Blocking: run on a blocking thread.

use crate::codes;
use crate::recovery::{RecoveryError, blocked, count_failures};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use pushmfa_config::Recovery;
use pushmfa_state::{Invitation, Store, UserName, UserState};
use ring::digest::{SHA256, digest};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Right, and now used up.
    Accepted,
    /// Wrong, expired, or none: counted as a failure.
    Refused,
    /// Too many failures (the recovery-code counters).
    Blocked,
}

fn hash(normalized: &str) -> String {
    B64.encode(digest(&SHA256, normalized.as_bytes()))
}

/// A new invitation for `user`, replacing any earlier one.
pub fn create(
    store: &Store,
    user: &UserName,
    expires_at: u64,
) -> Result<Zeroizing<String>, RecoveryError> {
    let code = codes::generate_code()?;
    let normalized = codes::normalize(&code)?;
    let lock = store.lock(user)?;
    let mut state = store.load(user)?.unwrap_or_else(UserState::new);
    state.invitation = Some(Invitation {
        hash: hash(&normalized),
        expires_at,
    });
    store.save(&lock, user, &state)?;
    Ok(code)
}

/// Checks a typed invitation under the user's lock; a right one is removed
/// before this returns, a wrong one counted like a wrong recovery code.
pub fn check(
    store: &Store,
    user: &UserName,
    typed: &str,
    cfg: &Recovery,
    now: u64,
) -> Result<Checked, RecoveryError> {
    let lock = store.lock(user)?;
    let mut state = store.load(user)?.unwrap_or_else(UserState::new);
    if blocked(&state.failures, cfg, now).is_some() {
        return Ok(Checked::Blocked);
    }
    let matches = match (codes::normalize(typed), &state.invitation) {
        (Ok(n), Some(inv)) if now < inv.expires_at => {
            bool::from(hash(&n).as_bytes().ct_eq(inv.hash.as_bytes()))
        }
        _ => false,
    };
    let result = if matches {
        state.invitation = None;
        Checked::Accepted
    } else {
        count_failures(&mut state.failures, 1, now);
        Checked::Refused
    };
    store.save(&lock, user, &state)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invitation_works_once_and_not_after_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), nix::unistd::geteuid().as_raw()).unwrap();
        let alice = UserName::parse("alice").unwrap();
        let cfg = Recovery::default();
        let code = create(&store, &alice, 100).unwrap();
        assert_eq!(
            check(&store, &alice, "AAAA-BBBB-CCCC-DDDD", &cfg, 10).unwrap(),
            Checked::Refused
        );
        // Typed sloppily: still the code.
        let sloppy = code.to_lowercase().replace('-', " ");
        assert_eq!(
            check(&store, &alice, &sloppy, &cfg, 11).unwrap(),
            Checked::Accepted
        );
        assert_eq!(
            check(&store, &alice, &code, &cfg, 12).unwrap(),
            Checked::Refused
        );
        let code = create(&store, &alice, 100).unwrap();
        assert_eq!(
            check(&store, &alice, &code, &cfg, 100).unwrap(),
            Checked::Refused
        );
        let state = store.load(&alice).unwrap().unwrap();
        assert_eq!(state.failures.consecutive, 3);
        assert!(!state.enrolled());
    }
}
