//! A user's stored factors, read and changed off the async threads: every
//! call runs the blocking store (file locks, fsync) or a recovery-code hash
//! on a blocking thread, hashes at most `max_parallel_hashes` at once.

use crate::ctx::Ctx;
use crate::offline_codes::{self, OfflineAttempt};
use crate::recovery::{self, Attempt, RecoveryError};
use pushmfa_state::{UserName, UserState};
use zeroize::Zeroizing;

/// The user's state; a user with no state file has an empty one.
pub async fn load(ctx: &Ctx, user: &UserName) -> Result<UserState, RecoveryError> {
    let (store, user) = (ctx.store.clone(), user.clone());
    let loaded = tokio::task::spawn_blocking(move || store.load(&user))
        .await
        .map_err(|e| RecoveryError::Internal(e.to_string()))??;
    Ok(loaded.unwrap_or_else(UserState::new))
}

/// Runs `f` on the user's state under their lock and saves the result.
pub async fn with_state<T: Send + 'static>(
    ctx: &Ctx,
    user: &UserName,
    f: impl FnOnce(&mut UserState) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (store, u) = (ctx.store.clone(), user.clone());
    tokio::task::spawn_blocking(move || {
        let lock = store.lock(&u).map_err(|e| e.to_string())?;
        let mut state = store
            .load(&u)
            .map_err(|e| e.to_string())?
            .unwrap_or_else(UserState::new);
        let out = f(&mut state)?;
        store.save(&lock, &u, &state).map_err(|e| e.to_string())?;
        Ok(out)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// One recovery-code attempt (a user that cannot exist costs a hash too).
pub async fn check_code(
    ctx: &Ctx,
    user: Option<&UserName>,
    code: Zeroizing<String>,
) -> Result<Attempt, RecoveryError> {
    let (store, user) = (ctx.store.clone(), user.cloned());
    let cfg = ctx.cfg.recovery.clone();
    let now = ctx.clock.now_unix();
    ctx.hashers
        .run(move |scratch| recovery::attempt(&store, user.as_ref(), &code, &cfg, now, scratch))
        .await
        .map_err(RecoveryError::Internal)?
}

/// One offline-code attempt for the challenge `encoded`.
pub async fn check_offline_code(
    ctx: &Ctx,
    user: &UserName,
    encoded: Vec<u8>,
    code: u32,
) -> Result<OfflineAttempt, RecoveryError> {
    let (store, u) = (ctx.store.clone(), user.clone());
    let cfg = ctx.cfg.recovery.clone();
    let now = ctx.clock.now_unix();
    tokio::task::spawn_blocking(move || {
        offline_codes::attempt(&store, &u, &encoded, code, &cfg, now)
    })
    .await
    .map_err(|e| RecoveryError::Internal(e.to_string()))?
}

/// A new set of recovery codes, replacing the old ones (shown once).
pub async fn generate_codes(ctx: &Ctx, user: &UserName) -> Result<Vec<Zeroizing<String>>, String> {
    let (store, cfg, now, u) = (
        ctx.store.clone(),
        ctx.cfg.recovery.clone(),
        ctx.clock.now_unix(),
        user.clone(),
    );
    ctx.hashers
        .run(move |scratch| recovery::generate(&store, &u, &cfg, now, scratch))
        .await?
        .map_err(|e| logged(ctx, "recovery generate", e))
}

/// Logs a failed store operation and says what failed, for the caller.
pub fn logged(ctx: &Ctx, what: &str, e: RecoveryError) -> String {
    ctx.log.error(&format!("{what}: {e}"));
    format!("{what} failed: {e}")
}
