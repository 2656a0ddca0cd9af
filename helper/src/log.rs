//! Decision and error logging: syslog facility authpriv, and optionally
//! stderr (foreground runs and tests). Never pass a secret to these.

use pushmfa_protocol::text::sanitize;
use std::io::Write;
use std::sync::Mutex;

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

pub struct Logger {
    syslog: Option<Mutex<Syslog>>,
    stderr: bool,
    debug: bool,
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

    pub fn info(&self, msg: &str) {
        self.emit(Level::Info, msg)
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.emit(Level::Debug, msg)
        }
    }
}
