//! A user's groups from NSS (files, LDAP, SSSD: whatever nsswitch.conf
//! says), primary and supplementary, for the scoping rules. Blocking: run
//! it on a blocking thread.

use nix::unistd::{Group, User, getgrouplist};
use std::ffi::CString;

/// The names of `user`'s groups. An error means NSS could not answer or
/// does not know the user (getpwnam_r reports "not found" in several ways,
/// ENOENT among them, that a failing directory can produce too): the caller
/// must not exempt anyone on it.
pub fn groups_of(user: &str) -> Result<Vec<String>, String> {
    let Some(entry) = User::from_name(user).map_err(|e| format!("looking up user: {e}"))? else {
        return Err(format!("NSS does not know user {user}"));
    };
    let name = CString::new(user).map_err(|_| "user name has a NUL byte".to_string())?;
    let gids = getgrouplist(&name, entry.gid).map_err(|e| format!("listing groups: {e}"))?;
    let mut names = Vec::with_capacity(gids.len());
    for gid in gids {
        // A gid with no name cannot match a rule (rules name groups).
        if let Some(g) = Group::from_gid(gid).map_err(|e| format!("looking up group {gid}: {e}"))? {
            names.push(g.name);
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}
