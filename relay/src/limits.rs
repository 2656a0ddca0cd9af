//! Per-key token buckets (key: a bearer token, or an enrollment id).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Buckets kept before idle ones are dropped.
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `key`'s bucket; when it is empty, how long
    /// until it holds one again.
    pub fn allow(&self, key: &str) -> Result<(), Duration> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Err(Duration::from_secs(1));
        };
        let now = Instant::now();
        if buckets.len() >= MAX_BUCKETS {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - *tokens) / self.rate).min(3600.0),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_per_key() {
        let l = RateLimiter::new(0.01, 3.0);
        assert!(l.allow("a").is_ok() && l.allow("a").is_ok() && l.allow("a").is_ok());
        let wait = l.allow("a").unwrap_err();
        assert!(
            wait > Duration::from_secs(99) && wait <= Duration::from_secs(100),
            "{wait:?}"
        );
        assert!(l.allow("b").is_ok(), "keys are independent");
    }
}
