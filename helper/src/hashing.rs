//! Runs Argon2id work on blocking threads, at most N at once, each in one of
//! N preallocated scratch buffers: memory stays at N x the configured cost
//! however many logins arrive together.

use crate::codes::Scratch;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

pub struct Hashers {
    permits: Arc<Semaphore>,
    free: Arc<Mutex<Vec<Scratch>>>,
}

impl Hashers {
    pub fn new(n: usize) -> Hashers {
        Hashers {
            permits: Arc::new(Semaphore::new(n.max(1))),
            free: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs `job` (which may hash, lock and fsync) once a slot is free.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Scratch) -> T + Send + 'static,
    ) -> Result<T, String> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let free = self.free.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut scratch = free
                .lock()
                .ok()
                .and_then(|mut f| f.pop())
                .unwrap_or_default();
            let out = job(&mut scratch);
            if let Ok(mut f) = free.lock() {
                f.push(scratch);
            }
            out
        })
        .await
        .map_err(|e| e.to_string())
    }
}
