//! Runs Argon2id work on blocking threads, at most N at once, each in one of
//! at most N scratch buffers: memory stays at N x the configured cost
//! however many logins arrive together, and goes back to the system once
//! no hash is running (an idle helper stays small).

use crate::codes::Scratch;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

pub struct Hashers {
    slots: usize,
    permits: Arc<Semaphore>,
    free: Arc<Mutex<Vec<Scratch>>>,
}

impl Hashers {
    pub fn new(n: usize) -> Hashers {
        Hashers {
            slots: n.max(1),
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
        let (free, permits, slots) = (self.free.clone(), self.permits.clone(), self.slots);
        tokio::task::spawn_blocking(move || {
            let mut scratch = free
                .lock()
                .ok()
                .and_then(|mut f| f.pop())
                .unwrap_or_default();
            let out = job(&mut scratch);
            if let Ok(mut f) = free.lock() {
                f.push(scratch);
            }
            drop(permit);
            // Buffers are reused while hashes overlap; the last one out
            // releases them all (19 MiB each at the default cost).
            if permits.available_permits() == slots {
                if let Ok(mut f) = free.lock() {
                    f.clear();
                }
                release_free_memory();
            }
            out
        })
        .await
        .map_err(|e| e.to_string())
    }
}

/// Makes every large allocation (a 19 MiB hashing buffer) its own mmap,
/// returned to the kernel on free. Left alone, glibc raises its mmap
/// threshold after the first large free; later buffers then come from a
/// thread's arena, and one that ends up as that arena's top chunk stays
/// resident even after `malloc_trim` (which does not shrink thread arenas'
/// tops). Setting the threshold once turns that adjustment off. Call it at
/// start, before any thread allocates.
pub fn keep_large_buffers_unmapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Hands freed heap memory back to the kernel (small blocks freed in the
/// arenas; large buffers are unmapped on free, see
/// [`keep_large_buffers_unmapped`]).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas; 0 keeps no padding.
    unsafe {
        libc::malloc_trim(0);
    }
}
