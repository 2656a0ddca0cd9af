//! Token buckets in this process, per key (a token's hash, an enrollment
//! id, an address); each call names its bucket's rate.

use super::records::Rate;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Buckets(Mutex<HashMap<String, (f64, Instant)>>);

/// Buckets kept before full ones are dropped.
const MAX_BUCKETS: usize = 100_000;

impl Buckets {
    /// Takes one request from `key`'s bucket; when it is empty, how long
    /// until it holds one again.
    pub fn take(&self, key: &str, rate: Rate) -> Result<(), Duration> {
        let Ok(mut buckets) = self.0.lock() else {
            return Err(Duration::from_secs(1));
        };
        let now = Instant::now();
        if buckets.len() >= MAX_BUCKETS {
            // A bucket refilled to its burst is the same as no bucket.
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate.per_sec < rate.burst
            });
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((rate.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate.per_sec).min(rate.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - *tokens) / rate.per_sec).min(3600.0),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_per_key() {
        let l = Buckets::default();
        let r = Rate {
            per_sec: 0.01,
            burst: 3.0,
        };
        assert!(l.take("a", r).is_ok() && l.take("a", r).is_ok() && l.take("a", r).is_ok());
        let wait = l.take("a", r).unwrap_err();
        assert!(
            wait > Duration::from_secs(99) && wait <= Duration::from_secs(100),
            "{wait:?}"
        );
        assert!(l.take("b", r).is_ok(), "keys are independent");
    }
}
