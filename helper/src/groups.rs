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

/// Serializes walks of the user database: getpwent keeps one cursor per
/// process.
static PWENT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The users a rollout report looks at: every account NSS lists with a
/// uid of 1000 or more (people, by the Debian and Red Hat convention;
/// not nobody), and every member of `groups`, by membership or primary
/// group (for directories that do not list all their users).
pub fn report_candidates(groups: &[String]) -> Result<Vec<String>, String> {
    let mut gids = Vec::new();
    let mut names = Vec::new();
    for g in groups {
        if let Some(group) =
            Group::from_name(g).map_err(|e| format!("looking up group {g}: {e}"))?
        {
            gids.push(group.gid.as_raw());
            names.extend(group.mem);
        }
    }
    let _walk = PWENT.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: setpwent/getpwent/endpwent are called under PWENT, so no
    // other thread moves the cursor; each entry is copied out before the
    // next call reuses its storage.
    unsafe {
        libc::setpwent();
        loop {
            let entry = libc::getpwent();
            if entry.is_null() {
                break;
            }
            let (uid, gid) = ((*entry).pw_uid, (*entry).pw_gid);
            if (uid >= 1000 && uid != 65534) || gids.contains(&gid) {
                let name = std::ffi::CStr::from_ptr((*entry).pw_name);
                names.push(name.to_string_lossy().into_owned());
            }
        }
        libc::endpwent();
    }
    names.sort();
    names.dedup();
    Ok(names)
}
