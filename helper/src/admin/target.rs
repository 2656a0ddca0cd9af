//! Whom an admin call acts on: the caller, or the user it names when the
//! caller may manage that user.

use crate::ctx::Ctx;
use crate::log::Q;
use crate::peer::{self, Peer};
use pushmfa_state::UserName;

/// The user an admin call acts on: the named one (admins, or the caller
/// naming themself) or the caller.
pub(super) async fn target(
    ctx: &Ctx,
    peer: Peer,
    requested: Option<String>,
) -> Result<UserName, String> {
    let uid = peer.uid;
    let caller = tokio::task::spawn_blocking(move || peer::name_of(uid))
        .await
        .map_err(|e| e.to_string())?;
    let name = match (requested, caller) {
        (Some(u), Some(me)) if u == me => u,
        (Some(u), _) if peer.is_admin(ctx.helper_uid) => u,
        (Some(u), _) => {
            ctx.log.warning_from(
                uid,
                "manage another user",
                &format!(
                    "refused: uid {uid} asked to manage user={}; only root may manage other users",
                    Q(&u)
                ),
            );
            return Err(format!("only root may manage user {u}"));
        }
        (None, Some(me)) => me,
        (None, None) => return Err(format!("uid {uid} has no user name; pass --user")),
    };
    UserName::parse(&name).ok_or_else(|| format!("user name {name:?} is not supported"))
}

/// The user a root-only request names (reset, unlock).
pub(super) fn admin_target(
    ctx: &Ctx,
    peer: Peer,
    user: &str,
    what: &str,
) -> Result<UserName, String> {
    if !peer.is_admin(ctx.helper_uid) {
        return Err(format!("only root may {what} a user"));
    }
    UserName::parse(user).ok_or_else(|| format!("user name {user:?} is not supported"))
}
