//! Typed configuration of pushmfa, loaded from TOML.
//!
//! Unknown keys are errors; every error names the file, line, column and key.
//! The file itself must be a regular file owned by root or the helper's user
//! and not writable by group or others (see [`check_secure_path`]).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod edit;
pub mod policy;
pub mod relay;
pub mod secure;

pub use policy::{FailMode, Offline, Policy, ServicePolicy, Unenrolled};

pub use secure::{
    InsecureReason, OpenError, check_secure_dir, check_secure_path, open_secure_file, replace_file,
};

use serde::Deserialize;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where packages install the configuration.
pub const DEFAULT_PATH: &str = "/etc/pushmfa/pushmfa.toml";
/// The shipped, fully commented configuration file.
pub const SHIPPED_CONFIG: &str = include_str!("../pushmfa.toml");
/// A configuration file larger than this is refused.
pub const MAX_CONFIG_LEN: u64 = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub helper: Helper,
    pub backend: Backend,
    pub push: Push,
    pub enrollment: Enrollment,
    pub recovery: Recovery,
    pub policy: Policy,
    pub log: Log,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// No push: recovery codes only.
    #[default]
    None,
    /// pushmfa-relay.
    Relay,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backend {
    pub kind: BackendKind,
    /// The relay's URL, or several (instances of one relay, sharing a
    /// store), tried in order when a connection cannot be made.
    pub url: RelayUrls,
    pub timeout_secs: u32,
    /// Accept an `http://` relay URL that is not on loopback.
    pub allow_plain_http: bool,
    /// Where phones open the web app; empty: the relay's own `<url>/app/`.
    pub app_url: String,
    /// PEM certificates to trust for the relay instead of the system's
    /// (a private CA, or the relay's own self-signed certificate).
    pub ca_file: String,
    /// Base64 SHA-256 of keys (SubjectPublicKeyInfo) the relay's
    /// certificate must have, besides a valid chain; empty: no pin.
    pub pin_sha256: Vec<String>,
}

impl Default for Backend {
    fn default() -> Self {
        Backend {
            kind: BackendKind::None,
            url: RelayUrls::default(),
            timeout_secs: 5,
            allow_plain_http: false,
            app_url: String::new(),
            ca_file: String::new(),
            pin_sha256: Vec::new(),
        }
    }
}

fn decode_pin(p: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(p)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
}

impl Backend {
    /// The pinned key hashes (validated on load).
    pub fn pins(&self) -> Vec<[u8; 32]> {
        self.pin_sha256
            .iter()
            .filter_map(|p| decode_pin(p))
            .collect()
    }
}

/// `url = "https://relay.example.org"`, or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelayUrls(pub Vec<String>);

impl RelayUrls {
    /// The first URL (empty when none is set): the one named in messages.
    pub fn first(&self) -> &str {
        self.0.first().map_or("", String::as_str)
    }
}

impl<'de> Deserialize<'de> for RelayUrls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(u) if u.is_empty() => RelayUrls(Vec::new()),
            OneOrMany::One(u) => RelayUrls(vec![u]),
            OneOrMany::Many(v) => RelayUrls(v),
        })
    }
}

/// How the push step is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushMode {
    /// An info line with the number, then wait for the phone.
    Wait,
    /// One prompt: approve on the phone and press Enter, or type a code.
    Prompt,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Push {
    pub ttl_secs: u32,
    /// Mode per PAM service; others use `prompt` when PAM_RHOST is set, else `wait`.
    pub modes: std::collections::BTreeMap<String, PushMode>,
    pub resend: u32,
    pub rate_limit_count: u32,
    pub rate_limit_window_secs: u32,
    pub fraud_mute_secs: u32,
    /// Host name shown on the phone (default: the system's host name).
    pub host_name: String,
    /// The push prompt (prompt mode); placeholders below.
    pub prompt_text: String,
    /// The push info line (wait mode).
    pub info_text: String,
    /// The oldest device protocol accepted: 1 (every device) or 2 (only
    /// devices whose requests travel sealed, which the relay cannot read).
    pub min_protocol: u8,
    /// Every approval must carry the device's passkey assertion with the
    /// user verified (screen lock or biometrics), checked by the helper.
    pub require_user_verification: bool,
    /// The PAM services that require it even when the above is false.
    pub user_verification_services: Vec<String>,
}

impl Push {
    /// Whether approvals for `service` must be user-verified.
    pub fn user_verification_for(&self, service: &str) -> bool {
        self.require_user_verification
            || self.user_verification_services.iter().any(|s| s == service)
    }

    /// Whether any service requires user verification (enrollment then
    /// asks devices for a passkey).
    pub fn user_verification_anywhere(&self) -> bool {
        self.require_user_verification || !self.user_verification_services.is_empty()
    }
}

/// Placeholders in `push.prompt_text` and `push.info_text`.
pub const PUSH_PLACEHOLDERS: [&str; 7] = [
    "{number}",
    "{offline}",
    "{ttl}",
    "{user}",
    "{service}",
    "{rhost}",
    "{host}",
];

impl Default for Push {
    fn default() -> Self {
        Push {
            ttl_secs: 60,
            modes: std::collections::BTreeMap::new(),
            resend: 0,
            rate_limit_count: 5,
            rate_limit_window_secs: 300,
            fraud_mute_secs: 1200,
            host_name: String::new(),
            prompt_text: "Approve on your phone with number {number}, then press Enter (or type a recovery code{offline}): ".into(),
            info_text: "Approve on your phone with number {number} (expires in {ttl} s).".into(),
            min_protocol: 1,
            require_user_verification: false,
            user_verification_services: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Enrollment {
    pub issuer: String,
    pub registration_timeout_secs: u32,
}

impl Default for Enrollment {
    fn default() -> Self {
        Enrollment {
            issuer: "pushmfa".into(),
            registration_timeout_secs: 120,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Helper {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub prompt_timeout_secs: u32,
    pub max_connections: u32,
    pub max_connections_per_user: u32,
}

impl Default for Helper {
    fn default() -> Self {
        Helper {
            socket: PathBuf::from("/run/pushmfa/helper.sock"),
            state_dir: PathBuf::from("/var/lib/pushmfa"),
            prompt_timeout_secs: 120,
            max_connections: 256,
            max_connections_per_user: 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recovery {
    pub code_count: u32,
    pub max_tries: u32,
    pub backoff_after: u32,
    pub backoff_max_secs: u64,
    pub lockout_after: u32,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub max_parallel_hashes: u32,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            code_count: 10,
            max_tries: 3,
            backoff_after: 3,
            backoff_max_secs: 300,
            lockout_after: 10,
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            max_parallel_hashes: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    #[default]
    Info,
    Debug,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub level: LogLevel,
}

/// A configuration error, always tied to the file it came from.
#[derive(Debug)]
pub enum ConfigError {
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    Insecure {
        path: PathBuf,
        reason: InsecureReason,
    },
    TooLarge {
        path: PathBuf,
    },
    /// Syntax error, unknown key or wrong type, or a value out of range.
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        key: Option<String>,
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            ConfigError::Insecure { path, reason } => {
                write!(f, "{}: refusing to use: {reason}", path.display())
            }
            ConfigError::TooLarge { path } => write!(
                f,
                "{}: larger than {MAX_CONFIG_LEN} bytes; is this the right file?",
                path.display()
            ),
            ConfigError::Invalid {
                path,
                line,
                column,
                key,
                message,
            } => {
                write!(f, "{}:{line}:{column}: ", path.display())?;
                if let Some(k) = key {
                    write!(f, "key `{k}`: ")?;
                }
                write!(f, "{message}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Loads and validates `path`, refusing a file that is insecure
    /// (a symlink, not regular, writable by group/others, or owned by anyone
    /// but root or `trusted_uid`).
    pub fn load(path: &Path, trusted_uid: u32) -> Result<Config, ConfigError> {
        Config::parse(&read_config(path, trusted_uid)?, path)
    }

    /// Parses and validates TOML text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = from_toml(text, path)?;
        config.validate().map_err(|e| invalid_key(text, path, e))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), (&'static str, &'static str, String)> {
        fn range<T: PartialOrd + fmt::Display>(
            section: &'static str,
            key: &'static str,
            v: T,
            lo: T,
            hi: T,
        ) -> Result<(), (&'static str, &'static str, String)> {
            if v < lo || v > hi {
                Err((section, key, format!("{v} is out of range {lo}..={hi}")))
            } else {
                Ok(())
            }
        }
        let h = &self.helper;
        if !h.socket.is_absolute() {
            return Err(("helper", "socket", "must be an absolute path".into()));
        }
        if !h.state_dir.is_absolute() {
            return Err(("helper", "state_dir", "must be an absolute path".into()));
        }
        range(
            "helper",
            "prompt_timeout_secs",
            h.prompt_timeout_secs,
            5,
            600,
        )?;
        range("helper", "max_connections", h.max_connections, 1, 65536)?;
        range(
            "helper",
            "max_connections_per_user",
            h.max_connections_per_user,
            1,
            h.max_connections,
        )?;
        let r = &self.recovery;
        range("recovery", "code_count", r.code_count, 1, 20)?;
        range("recovery", "max_tries", r.max_tries, 1, 10)?;
        range("recovery", "lockout_after", r.lockout_after, 1, 100)?;
        range(
            "recovery",
            "backoff_after",
            r.backoff_after,
            1,
            r.lockout_after,
        )?;
        range("recovery", "backoff_max_secs", r.backoff_max_secs, 1, 86400)?;
        range(
            "recovery",
            "argon2_memory_kib",
            r.argon2_memory_kib,
            8,
            4 * 1024 * 1024,
        )?;
        range("recovery", "argon2_iterations", r.argon2_iterations, 1, 100)?;
        range(
            "recovery",
            "argon2_parallelism",
            r.argon2_parallelism,
            1,
            16,
        )?;
        if r.argon2_memory_kib < 8 * r.argon2_parallelism {
            return Err((
                "recovery",
                "argon2_memory_kib",
                "must be at least 8 x argon2_parallelism".into(),
            ));
        }
        range(
            "recovery",
            "max_parallel_hashes",
            r.max_parallel_hashes,
            0,
            256,
        )?;
        let b = &self.backend;
        if b.kind == BackendKind::Relay && b.url.0.is_empty() {
            return Err((
                "backend",
                "url",
                "needs the http:// or https:// URL of the relay".into(),
            ));
        }
        if b.url.0.len() > 8 {
            return Err(("backend", "url", "lists more than 8 relays".into()));
        }
        for url in &b.url.0 {
            if b.kind == BackendKind::Relay
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                return Err((
                    "backend",
                    "url",
                    format!("{url:?}: needs the http:// or https:// URL of the relay"),
                ));
            }
            if b.kind == BackendKind::Relay && !b.allow_plain_http && !secure_transport(url) {
                return Err((
                    "backend",
                    "url",
                    format!(
                        "{url:?} is plain http:// to another machine: anyone on the path could read and delay logins; use https://, or set allow_plain_http = true"
                    ),
                ));
            }
        }
        if let Some(bad) = b.pin_sha256.iter().find(|p| decode_pin(p).is_none()) {
            return Err((
                "backend",
                "pin_sha256",
                format!(
                    "{bad:?} is not the base64 of a SHA-256 hash (44 characters, as `openssl dgst -sha256 -binary | base64` prints)"
                ),
            ));
        }
        if !b.ca_file.is_empty() && !b.ca_file.starts_with('/') {
            return Err(("backend", "ca_file", "must be an absolute path".into()));
        }
        if !b.app_url.is_empty() && !secure_transport(&b.app_url) {
            return Err((
                "backend",
                "app_url",
                "must be an https:// URL (browsers give a web app its keys only on https)".into(),
            ));
        }
        range("backend", "timeout_secs", b.timeout_secs, 1, 60)?;
        let p = &self.push;
        range("push", "ttl_secs", p.ttl_secs, 5, 600)?;
        range("push", "resend", p.resend, 0, 5)?;
        range("push", "rate_limit_count", p.rate_limit_count, 1, 1000)?;
        range(
            "push",
            "rate_limit_window_secs",
            p.rate_limit_window_secs,
            1,
            86400,
        )?;
        range("push", "fraud_mute_secs", p.fraud_mute_secs, 0, 7 * 86400)?;
        range("push", "min_protocol", u32::from(p.min_protocol), 1, 2)?;
        if p.host_name.len() > 255 {
            return Err(("push", "host_name", "at most 255 bytes".into()));
        }
        for (key, text) in [("prompt_text", &p.prompt_text), ("info_text", &p.info_text)] {
            if !text.contains("{number}") {
                return Err((
                    "push",
                    key,
                    "must show {number}: the user types it on the phone".into(),
                ));
            }
            if text.len() > 512 {
                return Err(("push", key, "at most 512 bytes".into()));
            }
            let mut rest = text.replace("{{", "").replace("}}", "");
            for ph in PUSH_PLACEHOLDERS {
                rest = rest.replace(ph, "");
            }
            if rest.contains('{') || rest.contains('}') {
                return Err((
                    "push",
                    key,
                    format!(
                        "unknown placeholder; known: {}",
                        PUSH_PLACEHOLDERS.join(" ")
                    ),
                ));
            }
        }
        let p = &self.policy;
        if !p.enroll_until.is_empty() && p.enroll_ends_at().is_none() {
            return Err((
                "policy",
                "enroll_until",
                "must be a date, \"YYYY-MM-DD\"".into(),
            ));
        }
        if p.enroll_anywhere() && p.enroll_until.is_empty() {
            return Err((
                "policy",
                "unenrolled",
                "\"enroll\" needs policy.enroll_until = \"YYYY-MM-DD\": a stolen password would otherwise enroll the thief's phone for ever".into(),
            ));
        }
        for net in &self.policy.exempt_networks {
            policy::parse_network(net).map_err(|e| ("policy", "exempt_networks", e))?;
        }
        for (key, names) in [
            ("require_groups", &self.policy.require_groups),
            ("exempt_users", &self.policy.exempt_users),
            ("exempt_groups", &self.policy.exempt_groups),
        ] {
            if names
                .iter()
                .any(|n| n.is_empty() || n.chars().any(char::is_whitespace))
            {
                return Err((
                    "policy",
                    key,
                    "names must be non-empty, without spaces".into(),
                ));
            }
        }
        let e = &self.enrollment;
        range(
            "enrollment",
            "registration_timeout_secs",
            e.registration_timeout_secs,
            10,
            900,
        )?;
        if e.issuer.is_empty() || e.issuer.len() > 64 {
            return Err(("enrollment", "issuer", "1 to 64 bytes".into()));
        }
        Ok(())
    }
}

/// 1-based line and column of byte offset `pos`.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = &text[..pos.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

/// Where `key` is set inside `[section]` (1-based), or (1, 1) if the value
/// came from a default.
/// Reads a configuration file that passes the ownership and mode checks.
fn read_config(path: &Path, trusted_uid: u32) -> Result<String, ConfigError> {
    let file = open_secure_file(path, trusted_uid).map_err(|e| match e {
        secure::OpenError::Io(error) => ConfigError::Io {
            path: path.to_owned(),
            error,
        },
        secure::OpenError::Insecure(reason) => ConfigError::Insecure {
            path: path.to_owned(),
            reason,
        },
    })?;
    let mut text = String::new();
    file.take(MAX_CONFIG_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|error| ConfigError::Io {
            path: path.to_owned(),
            error,
        })?;
    if text.len() as u64 > MAX_CONFIG_LEN {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(text)
}

/// Deserializes TOML; syntax errors, unknown keys and wrong types name their line.
fn from_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        ConfigError::Invalid {
            path: path.to_owned(),
            line,
            column,
            key: backticked(e.message()),
            message: e.message().trim().to_owned(),
        }
    })
}

/// A value that parsed but is out of range, located in the text.
fn invalid_key(
    text: &str,
    path: &Path,
    (section, key, message): (&str, &str, String),
) -> ConfigError {
    let (line, column) = locate_key(text, section, key);
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        column,
        key: Some(if section.is_empty() {
            key.to_owned()
        } else {
            format!("{section}.{key}")
        }),
        message,
    }
}

fn locate_key(text: &str, section: &str, key: &str) -> (usize, usize) {
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if let Some(rest) = line.strip_prefix('[') {
            current = rest.split(']').next().unwrap_or("").trim().to_owned();
            continue;
        }
        if current == section
            && line
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        {
            return (i + 1, raw.len() - line.len() + 1);
        }
    }
    (1, 1)
}

/// Where distributions keep the system's trusted CA certificates.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
];

/// The PEM certificates a client of the relay should trust: `ca_file`
/// when set, else the system's bundle; None when there is no system bundle
/// (the client then uses its built-in Mozilla roots).
pub fn trusted_roots(ca_file: &str) -> Result<Option<Vec<u8>>, String> {
    if !ca_file.is_empty() {
        let pem = std::fs::read(ca_file).map_err(|e| format!("ca_file {ca_file}: {e}"))?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(format!("ca_file {ca_file}: holds no PEM certificate"));
        }
        return Ok(Some(pem));
    }
    Ok(SYSTEM_CA_BUNDLES
        .iter()
        .find_map(|p| std::fs::read(p).ok().filter(|b| !b.is_empty())))
}

/// Whether `url` is https, or plain http to this machine (loopback).
pub fn secure_transport(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..host_end];
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(t, Path::new("/etc/pushmfa/pushmfa.toml"))
    }

    #[test]
    fn scoping_rules_fail_closed_with_file_line_key() {
        let c = parse("[policy]\nexempt_networks = [\"10.0.0.0/8\", \"2001:db8::/32\"]\nrequire_groups = [\"admins\"]\n").unwrap();
        for addr in ["10.1.2.3", "2001:db8::1"] {
            assert_eq!(c.policy.scope("x", &[], Some(addr)).rule, "exempt_networks");
        }
        let e = parse("[log]\n\n[policy]\nexempt_networks = [\"10.0.0.0/8\", \"10.1.2.3\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pushmfa.toml:4:1: key `policy.exempt_networks`: \"10.1.2.3\" is not a network in CIDR form"),
            "{e}"
        );
        let e = parse("[policy]\nexempt_network = [\"10.0.0.0/8\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2:1: key `exempt_network`"), "{e}");
        let e = parse("[policy]\nexempt_users = [\"\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2:1: key `policy.exempt_users`"), "{e}");
        let e = parse("[policy.services.sshd]\nmode = \"wait\"\nunenrolled = \"later\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":3:"), "{e}");
        // First-login enrollment needs an end date, and a real one.
        let e = parse("[policy]\nexempt_users = []\nunenrolled = \"enroll\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":3:1: key `policy.unenrolled`: \"enroll\" needs policy.enroll_until"),
            "{e}"
        );
        let e = parse("[policy]\nunenrolled = \"enroll\"\nenroll_until = \"2026-02-30\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":3:1: key `policy.enroll_until`: must be a date"),
            "{e}"
        );
        assert!(
            parse("[policy]\nunenrolled = \"enroll\"\nenroll_until = \"2026-12-31\"\n").is_ok()
        );
    }

    #[test]
    fn a_service_table_overrides_offline_and_refuses_unknown_keys() {
        let c =
            parse("[policy]\noffline = \"allow\"\n\n[policy.services.sshd]\noffline = \"deny\"\n")
                .unwrap();
        assert_eq!(c.policy.offline_for("sshd"), Offline::Deny);
        assert_eq!(c.policy.offline_for("sudo"), Offline::Allow);
        let c = parse("[policy]\noffline = \"deny\"\n[policy.services.sudo]\n").unwrap();
        assert_eq!(c.policy.offline_for("sudo"), Offline::Deny);
        let e = parse("[policy.services.sshd]\nofline = \"deny\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2:1: key `ofline`"), "{e}");
        let e = parse("[policy.services.sshd]\noffline = \"maybe\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":2:") && e.contains("allow") && e.contains("deny"),
            "{e}"
        );
    }

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        for ok in [
            "https://relay.example.org",
            "http://127.0.0.1:8480",
            "http://localhost/",
            "http://[::1]:8480",
            "http://127.0.0.2",
        ] {
            assert!(secure_transport(ok), "{ok}");
            let t = format!("[backend]\nkind = \"relay\"\nurl = \"{ok}\"\n");
            assert!(parse(&t).is_ok(), "{ok}");
        }
        for bad in [
            "http://relay.example.org",
            "http://localhost.example.org",
            "http://127.0.0.1.nip.io",
            "http://10.0.0.1:8480",
            "http://[::2]:8480",
        ] {
            assert!(!secure_transport(bad), "{bad}");
            let t = format!("[backend]\nkind = \"relay\"\nurl = \"{bad}\"\n");
            let e = parse(&t).unwrap_err().to_string();
            assert!(
                e.contains("key `backend.url`: \"") && e.contains("is plain http://"),
                "{e}"
            );
            let allowed = format!("{t}allow_plain_http = true\n");
            assert!(parse(&allowed).is_ok(), "{bad}");
        }
    }

    #[test]
    fn several_relay_urls_are_a_list_each_checked() {
        let c = parse("[backend]\nkind = \"relay\"\nurl = [\"https://a.example.org\", \"http://[::1]:8480\"]\n").unwrap();
        assert_eq!(
            c.backend.url.0,
            ["https://a.example.org", "http://[::1]:8480"]
        );
        assert_eq!(c.backend.url.first(), "https://a.example.org");
        let e = parse("[backend]\nkind = \"relay\"\nurl = [\"https://a.example.org\", \"http://b.example.org\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"http://b.example.org\" is plain http://"),
            "{e}"
        );
        let e = parse("[backend]\nkind = \"relay\"\nurl = []\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs the http:// or https:// URL"), "{e}");
        assert!(parse("[backend]\nurl = 5\n").is_err());
        assert!(parse("[backend]\nurl = [5]\n").is_err());
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    /// The shipped file documents every option with its real default:
    /// uncommenting every option line must give exactly the defaults.
    #[test]
    fn shipped_file_documents_the_defaults() {
        assert_eq!(parse(SHIPPED_CONFIG).unwrap(), Config::default());
        let uncommented: String = SHIPPED_CONFIG
            .lines()
            .map(|l| {
                let t = l.trim_start_matches("# ");
                let is_option = t
                    .split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
                if is_option { t } else { l }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_ne!(uncommented, SHIPPED_CONFIG);
        assert_eq!(parse(&uncommented).unwrap(), Config::default());
        assert!(uncommented.contains("\nmax_tries = 3"));
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = parse("[recovery]\nmax_tries = 3\nmax_trys = 4\n").unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with("/etc/pushmfa/pushmfa.toml:3:1: key `max_trys`"),
            "{s}"
        );
        let e = parse("[recovry]\n").unwrap_err().to_string();
        assert!(e.contains(":1:") && e.contains("recovry"), "{e}");
    }

    #[test]
    fn out_of_range_value_names_line_and_key() {
        let s = parse("[helper]\n\n[recovery]\n  lockout_after = 500\n")
            .unwrap_err()
            .to_string();
        assert!(
            s.contains(":4:3: key `recovery.lockout_after`: 500 is out of range 1..=100"),
            "{s}"
        );
        let s = parse("[helper]\nsocket = \"relative.sock\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            s.contains(":2:1: key `helper.socket`: must be an absolute path"),
            "{s}"
        );
    }

    #[test]
    fn push_texts_must_show_the_number_and_use_known_placeholders() {
        let e = parse("[push]\nprompt_text = \"Press Enter: \"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":2:1: key `push.prompt_text`: must show {number}"),
            "{e}"
        );
        let e = parse("[push]\ninfo_text = \"{number} {colour}\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown placeholder"), "{e}");
        assert!(parse("[push]\ninfo_text = \"{host}: {number} for {user} via {service} from {rhost}, {ttl} s\"\n").is_ok());
    }

    #[test]
    fn backend_and_push_values_are_checked() {
        let e = parse("[backend]\nkind = \"relay\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key `backend.url`: needs the http:// or https:// URL"),
            "{e}"
        );
        let e = parse("[push]\nttl_secs = 3600\n").unwrap_err().to_string();
        assert!(
            e.contains(":2:1: key `push.ttl_secs`: 3600 is out of range 5..=600"),
            "{e}"
        );
        let e = parse("[push.modes]\nsshd = \"popup\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("popup"), "{e}");
        assert!(parse("[backend]\nkind = \"relay\"\nurl = \"https://relay.example.org\"\n[push.modes]\nsudo = \"prompt\"\n").is_ok());
    }

    #[test]
    fn garbage_wrong_types_and_truncation() {
        for bad in [
            "\u{0}\u{1}garbage",
            "[recovery",
            "[recovery]\nmax_tries = \"three\"",
            "[recovery]\nmax_tries = ",
            "[policy]\nunenrolled = \"maybe\"",
            "recovery = 5",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, ConfigError::Invalid { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn oversize_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.toml");
        std::fs::write(&p, "#".repeat(MAX_CONFIG_LEN as usize + 10)).unwrap();
        let e = Config::load(&p, unsafe { libc::geteuid() }).unwrap_err();
        assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
    }
}
