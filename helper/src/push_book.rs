//! Per-user push bookkeeping in the helper's memory: one outstanding push
//! per user, a sliding-window rate limit, and denials per ssh connection.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Per-user push bookkeeping in the helper's memory: at most one
/// outstanding push per user, and a sliding-window rate limit.
#[derive(Default)]
pub struct PushBook {
    users: Mutex<HashMap<String, UserPushes>>,
    /// (user, sshd connection) whose push was denied on a device.
    denied_connections: Mutex<HashMap<(String, i32), Instant>>,
}

/// How long a denial answers retries on the same ssh connection.
pub const DENIAL_MEMORY: Duration = Duration::from_secs(120);

#[derive(Default)]
struct UserPushes {
    outstanding: bool,
    sent: VecDeque<Instant>,
}

impl UserPushes {
    /// Counts one push if fewer than `limit` were sent within `window`.
    fn count_push(&mut self, limit: usize, window: Duration, now: Instant) -> bool {
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.sent.pop_front();
        }
        if self.sent.len() >= limit {
            return false;
        }
        self.sent.push_back(now);
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    Outstanding,
    RateLimited,
}

/// Releases the user's outstanding push when dropped.
pub struct PushSlot<'a> {
    book: &'a PushBook,
    user: String,
}

impl Drop for PushSlot<'_> {
    fn drop(&mut self) {
        if let Ok(mut users) = self.book.users.lock() {
            if let Some(u) = users.get_mut(&self.user) {
                u.outstanding = false;
            }
        }
    }
}

impl PushBook {
    /// Reserves the user's one push slot and counts one push against the
    /// rate limit (`limit` pushes per `window`).
    pub fn start(
        &self,
        user: &str,
        limit: usize,
        window: Duration,
        now: Instant,
    ) -> Result<PushSlot<'_>, Blocked> {
        let mut users = self.users.lock().map_err(|_| Blocked::Outstanding)?;
        let u = users.entry(user.to_owned()).or_default();
        if u.outstanding {
            return Err(Blocked::Outstanding);
        }
        if !u.count_push(limit, window, now) {
            return Err(Blocked::RateLimited);
        }
        u.outstanding = true;
        Ok(PushSlot {
            book: self,
            user: user.to_owned(),
        })
    }

    /// Remembers a denial on a device for `user` on ssh connection `conn`.
    pub fn note_denial(&self, user: &str, conn: i32, now: Instant) {
        if let Ok(mut d) = self.denied_connections.lock() {
            d.retain(|_, t| now.duration_since(*t) < DENIAL_MEMORY);
            d.insert((user.to_owned(), conn), now);
        }
    }

    /// Whether `user` denied a push on ssh connection `conn` just now.
    pub fn denied_on_connection(&self, user: &str, conn: i32, now: Instant) -> bool {
        self.denied_connections
            .lock()
            .ok()
            .and_then(|d| d.get(&(user.to_owned(), conn)).copied())
            .is_some_and(|t| now.duration_since(t) < DENIAL_MEMORY)
    }

    /// Counts one more push for an ongoing login (a resend).
    pub fn count_resend(&self, user: &str, limit: usize, window: Duration, now: Instant) -> bool {
        let Ok(mut users) = self.users.lock() else {
            return false;
        };
        users
            .entry(user.to_owned())
            .or_default()
            .count_push(limit, window, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denial_is_remembered_per_user_and_connection() {
        let book = PushBook::default();
        let now = Instant::now();
        book.note_denial("alice", 42, now);
        assert!(book.denied_on_connection("alice", 42, now + Duration::from_secs(5)));
        assert!(
            !book.denied_on_connection("alice", 43, now),
            "another connection"
        );
        assert!(!book.denied_on_connection("bob", 42, now), "another user");
        assert!(
            !book.denied_on_connection("alice", 42, now + DENIAL_MEMORY),
            "forgotten"
        );
    }

    #[test]
    fn one_outstanding_push_and_a_rate_limit() {
        let book = PushBook::default();
        let now = Instant::now();
        let w = Duration::from_secs(300);
        let slot = book.start("alice", 2, w, now).unwrap();
        assert_eq!(
            book.start("alice", 2, w, now).err(),
            Some(Blocked::Outstanding)
        );
        assert!(book.start("bob", 2, w, now).is_ok());
        drop(slot);
        let slot = book.start("alice", 2, w, now).unwrap();
        drop(slot);
        assert_eq!(
            book.start("alice", 2, w, now).err(),
            Some(Blocked::RateLimited)
        );
        assert!(
            book.start("alice", 2, w, now + w).is_ok(),
            "the window slides"
        );
    }
}
