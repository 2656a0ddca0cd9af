//! Offline-code policy: one attempt under the user's lock, counted in the
//! same backoff and lockout counters as recovery codes. Blocking (file
//! lock, fsync); runs on a blocking thread.
//!
//! A typed code is checked against every device's offline key in constant
//! time, and a wrong one counts once per key it was checked against: each
//! key is a separate chance to match, so the lockout bounds an attacker's
//! odds at `lockout_after / 10^8` however many devices the user has.

use crate::recovery::{Blocked, RecoveryError, blocked, count_failures};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_config::Recovery;
use pushmfa_protocol::offline::{KEY_LEN, response_code};
use pushmfa_state::{Failures, Store, StoreError, UserName, UserState};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfflineAttempt {
    /// The code is right: the name of the device whose key made it.
    Accepted {
        device: String,
    },
    Wrong,
    Backoff {
        retry_after: u64,
    },
    LockedOut,
}

/// The user's devices that hold an offline key.
pub fn key_count(state: &UserState) -> usize {
    state
        .devices
        .iter()
        .filter(|d| d.offline_key.is_some())
        .count()
}

/// Checks `code` for the challenge `encoded` against each of the user's
/// offline keys, and persists the outcome (failures reset, or counted)
/// before it returns.
pub fn attempt(
    store: &Store,
    user: &UserName,
    encoded: &[u8],
    code: u32,
    cfg: &Recovery,
    now: u64,
) -> Result<OfflineAttempt, RecoveryError> {
    let lock = store.lock(user)?;
    let mut state = store.load(user)?.unwrap_or_else(UserState::new);
    match blocked(&state.failures, cfg, now) {
        Some(Blocked::LockedOut) => return Ok(OfflineAttempt::LockedOut),
        Some(Blocked::Backoff { retry_after }) => {
            return Ok(OfflineAttempt::Backoff { retry_after });
        }
        None => {}
    }
    let mut matched = None;
    let mut checked = 0u32;
    for device in state.devices.iter().filter(|d| d.offline_key.is_some()) {
        let key = decode_key(device.offline_key.as_deref(), store, user)?;
        let expected = response_code(&key, encoded);
        checked += 1;
        // Every key is tried whatever matched before: the time taken says
        // nothing about which device, if any, made the code.
        if bool::from(expected.to_be_bytes().ct_eq(&code.to_be_bytes())) {
            matched = Some(device.name.clone());
        }
    }
    let result = match matched {
        Some(device) => {
            state.failures = Failures::default();
            OfflineAttempt::Accepted { device }
        }
        None => {
            count_failures(&mut state.failures, checked.max(1), now);
            OfflineAttempt::Wrong
        }
    };
    store.save(&lock, user, &state)?;
    Ok(result)
}

fn decode_key(
    stored: Option<&str>,
    store: &Store,
    user: &UserName,
) -> Result<Zeroizing<[u8; KEY_LEN]>, StoreError> {
    let bytes = Zeroizing::new(B64.decode(stored.unwrap_or_default()).unwrap_or_default());
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(StoreError::Corrupt {
            path: store.state_path(user),
            detail: "a device's offline key is malformed".into(),
        });
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}
