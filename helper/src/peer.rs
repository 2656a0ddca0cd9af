//! Who is on the other end of the socket, and what they may do.

use nix::unistd::{Uid, User};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// From SO_PEERCRED: set by the kernel, not by the client.
    pub uid: u32,
    pub pid: Option<i32>,
}

impl Peer {
    /// Root and the helper's own user may administer any user.
    pub fn is_admin(&self, helper_uid: u32) -> bool {
        self.uid == 0 || self.uid == helper_uid
    }
}

/// The OpenSSH connection a PAM caller belongs to: sshd runs each
/// keyboard-interactive attempt in a child forked from the connection's
/// monitor process, so retries on one connection share that parent. None
/// when the caller is not such a child (or /proc cannot tell).
pub fn sshd_connection(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...: comm may contain spaces, so split after ')'.
    let ppid: i32 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{ppid}/comm")).ok()?;
    (comm.trim_end() == "sshd").then_some(ppid)
}

/// The uid of a user name (NSS), if the user exists.
pub fn uid_of(name: &str) -> Option<u32> {
    User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
}

/// The user name of a uid (NSS), if it has one.
pub fn name_of(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Whether `peer` may run a login for `user`: root callers (sshd, sudo, su,
/// login) for anyone; anyone else (a screen locker) only for themself.
pub fn may_authenticate(peer: &Peer, user: &str) -> bool {
    peer.uid == 0 || uid_of(user) == Some(peer.uid)
}
