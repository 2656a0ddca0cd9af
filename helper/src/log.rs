//! Decision and error logging: syslog facility authpriv, and optionally
//! stderr (foreground runs and tests). Never pass a secret to these.

use pushmfa_protocol::text::sanitize;
use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// Lines about what one uid did, of one kind, allowed in a burst...
const BURST: f64 = 20.0;
/// ...and per second after it. The rest are counted, not written: a local
/// user cannot flood the log until journald's own rate limit drops the
/// lines that matter.
const PER_SEC: f64 = 1.0;

struct Bucket {
    tokens: f64,
    at: Instant,
    suppressed: u64,
}

/// A value someone else controls (a user name, an address, a device name,
/// a relay's error text), shown in a log line as `"..."` with `\` and `"`
/// escaped: whatever it contains, it cannot end its field and forge
/// another (` outcome=success`).
pub struct Q<'a>(pub &'a str);

impl fmt::Display for Q<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

pub struct Logger {
    syslog: Option<Mutex<Syslog>>,
    stderr: bool,
    debug: bool,
    /// Per (uid, kind) of caller-caused warnings.
    buckets: Mutex<HashMap<(u32, &'static str), Bucket>>,
}

#[derive(Clone, Copy)]
enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

impl Logger {
    pub fn new(process: &str, stderr: bool, debug: bool) -> Logger {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_AUTHPRIV,
            hostname: None,
            process: process.into(),
            pid: std::process::id(),
        };
        Logger {
            syslog: syslog::unix(formatter).ok().map(Mutex::new),
            stderr,
            debug,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn emit(&self, level: Level, msg: &str) {
        // Log lines carry user-controlled text (user names, rhost): no control characters.
        let msg = sanitize(msg, false);
        if self.stderr {
            let tag = match level {
                Level::Error => "error",
                Level::Warning => "warning",
                Level::Info => "info",
                Level::Debug => "debug",
            };
            // One write per line: readers never see half a line.
            let line = format!("pushmfa-helper: {tag}: {msg}\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        if let Some(s) = &self.syslog {
            if let Ok(mut w) = s.lock() {
                let _ = match level {
                    Level::Error => w.err(&msg),
                    Level::Warning => w.warning(&msg),
                    Level::Info => w.info(&msg),
                    Level::Debug => w.debug(&msg),
                };
            }
        }
    }

    pub fn error(&self, msg: &str) {
        self.emit(Level::Error, msg)
    }

    pub fn warning(&self, msg: &str) {
        self.emit(Level::Warning, msg)
    }

    /// A warning about something `uid` made happen (a bad frame, too many
    /// connections). Rate-limited per uid and `kind`; suppressed lines are
    /// reported by [`Logger::flush_suppressed`] as one summary line.
    pub fn warning_from(&self, uid: u32, kind: &'static str, msg: &str) {
        if self.admit(uid, kind, Instant::now()) {
            self.emit(Level::Warning, msg)
        }
    }

    fn admit(&self, uid: u32, kind: &'static str, now: Instant) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        let b = buckets.entry((uid, kind)).or_insert(Bucket {
            tokens: BURST,
            at: now,
            suppressed: 0,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * PER_SEC;
        b.tokens = (b.tokens + refill).min(BURST);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            b.suppressed += 1;
            false
        }
    }

    /// Writes "N similar lines suppressed" for every uid and kind that had
    /// lines held back, and forgets quiet ones (memory stays bounded).
    /// Called every few seconds.
    pub fn flush_suppressed(&self) {
        let now = Instant::now();
        let mut summaries = Vec::new();
        if let Ok(mut buckets) = self.buckets.lock() {
            buckets.retain(|(uid, kind), b| {
                if b.suppressed > 0 {
                    summaries.push(format!(
                        "uid {uid}: {} similar lines suppressed ({kind})",
                        b.suppressed
                    ));
                    b.suppressed = 0;
                }
                now.saturating_duration_since(b.at).as_secs_f64() * PER_SEC < BURST
            });
        }
        for line in summaries {
            self.emit(Level::Warning, &line);
        }
    }

    pub fn info(&self, msg: &str) {
        self.emit(Level::Info, msg)
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.emit(Level::Debug, msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn quoted_values_cannot_end_their_field() {
        let forged = r#"bob" outcome=success (method=push) x="\"#;
        let line = format!("login user={} outcome=denied", Q(forged));
        assert_eq!(
            line,
            r#"login user="bob\" outcome=success (method=push) x=\"\\" outcome=denied"#
        );
        assert_eq!(Q("alice").to_string(), "\"alice\"");
    }

    #[test]
    fn a_flood_from_one_uid_is_held_to_the_burst_then_one_a_second() {
        let log = Logger::new("test", false, false);
        let t0 = Instant::now();
        let admitted = (0..10_000)
            .filter(|_| log.admit(1000, "bad frame", t0))
            .count();
        assert_eq!(admitted, BURST as usize);
        // Another uid, or another kind, has its own allowance.
        assert!(log.admit(1001, "bad frame", t0));
        assert!(log.admit(1000, "too many connections", t0));
        // Three seconds later: three more lines.
        let later = t0 + Duration::from_secs(3);
        let admitted = (0..100)
            .filter(|_| log.admit(1000, "bad frame", later))
            .count();
        assert_eq!(admitted, 3);
        let buckets = log.buckets.lock().unwrap();
        assert_eq!(buckets[&(1000, "bad frame")].suppressed, 10_000 - 20 + 97);
    }
}
