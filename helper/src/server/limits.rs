//! How many connections one non-root uid may hold open at once, so that no
//! local user can fill the helper and block everyone's logins.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Counts open connections per non-root uid.
pub struct PerUser {
    open: Mutex<HashMap<u32, usize>>,
    pub max: usize,
}

/// One counted connection; released on drop.
pub struct UserSlot {
    owner: Arc<PerUser>,
    uid: u32,
}

impl PerUser {
    pub fn new(max: usize) -> Arc<PerUser> {
        Arc::new(PerUser {
            open: Mutex::new(HashMap::new()),
            max,
        })
    }

    /// A slot for `uid`, or None if it already holds `max` connections.
    pub fn acquire(self: &Arc<Self>, uid: u32) -> Option<UserSlot> {
        let mut open = self.open.lock().ok()?;
        let n = open.entry(uid).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            owner: self.clone(),
            uid,
        })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.owner.open.lock() {
            if let Some(n) = open.get_mut(&self.uid) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&self.uid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_slots_are_capped_and_released() {
        let p = PerUser::new(2);
        let a = p.acquire(1000).unwrap();
        let _b = p.acquire(1000).unwrap();
        assert!(p.acquire(1000).is_none());
        assert!(p.acquire(1001).is_some(), "another user is not affected");
        drop(a);
        assert!(p.acquire(1000).is_some());
    }
}
