//! Configuration of pushmfa-relay (`/etc/pushmfa-relay/relay.toml`).

use crate::{ConfigError, from_toml, invalid_key, read_config};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Where the relay package installs its configuration.
pub const RELAY_DEFAULT_PATH: &str = "/etc/pushmfa-relay/relay.toml";
/// The shipped, fully commented relay configuration.
pub const SHIPPED_RELAY_CONFIG: &str = include_str!("../relay.toml");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayFile {
    pub listen: SocketAddr,
    /// Empty: channels in memory only.
    pub data: PathBuf,
    /// `memory` (this process), or a Redis URL shared by several relays:
    /// `redis://host:port/db`, `redis+sentinel://host:port,.../service`.
    pub store: String,
    /// A file holding Redis's password (for example a systemd credential),
    /// so that it need not be in `store` in this world-readable file.
    pub store_password_file: PathBuf,
    pub rate_per_sec: f64,
    pub burst: f64,
    /// VAPID contact (`mailto:` or `https:`), sent to push services.
    pub web_push_contact: String,
    /// Push service origins allowed besides the browsers' own.
    pub web_push_allow: Vec<String>,
    /// The origin that serves the web app instead of this relay (empty:
    /// the relay serves it under /app/).
    pub app_origin: String,
    /// PEM certificate chain and private key: the relay speaks TLS itself
    /// (both set) or plain HTTP behind a proxy (neither).
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Reverse proxies (addresses or CIDR blocks) whose `X-Forwarded-For`
    /// names the client; everyone else is known by the connection's address.
    pub trusted_proxies: Vec<String>,
    pub limits: RelayLimits,
}

/// Bounds that keep one client from taking the relay down for everyone.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayLimits {
    /// Open connections in all (also capped by the open-file limit).
    pub max_connections: usize,
    /// Percent of `max_connections` kept for connections that have shown a
    /// valid token: anonymous ones never take the last of them.
    pub reserved_for_authenticated_percent: u8,
    /// Open connections from one client address.
    pub max_connections_per_address: usize,
    /// A request's head (and, on HTTP/1.1, the next one on a kept-alive
    /// connection) must arrive within this many seconds; so must its body.
    pub header_timeout_secs: u64,
    /// A connection with no request in progress is closed after this long.
    pub idle_timeout_secs: u64,
    /// Anonymous calls (enrollment creation, device registration) per
    /// minute from one address, and the burst above that.
    pub anonymous_per_minute: f64,
    pub anonymous_burst: f64,
    /// Enrollment slots one address may hold open at once.
    pub open_enrollments_per_address: usize,
    /// Long-polls one token may hold open at once.
    pub long_polls_per_token: usize,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_connections: 16_384,
            reserved_for_authenticated_percent: 25,
            max_connections_per_address: 256,
            header_timeout_secs: 10,
            idle_timeout_secs: 30,
            anonymous_per_minute: 60.0,
            anonymous_burst: 100.0,
            open_enrollments_per_address: 100,
            long_polls_per_token: 4,
        }
    }
}

/// `url` with any password in it replaced by `***`, for messages and logs.
pub fn redacted(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let sep = if scheme.is_empty() { "" } else { "://" };
            format!("{scheme}{sep}***@{}", &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

/// A trusted proxy entry: an address, or a CIDR block like `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrBlock {
    addr: IpAddr,
    prefix: u8,
}

impl AddrBlock {
    pub fn parse(s: &str) -> Option<AddrBlock> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(AddrBlock { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let bits = |a: IpAddr| match a {
            IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 32u32),
            IpAddr::V6(v) => (u128::from(v), 128),
        };
        let ((want, wlen), (have, hlen)) = (bits(self.addr), bits(ip));
        if wlen != hlen {
            return false;
        }
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        };
        want & mask == have & mask
    }
}

impl Default for RelayFile {
    fn default() -> Self {
        RelayFile {
            listen: SocketAddr::from(([127, 0, 0, 1], 8480)),
            data: PathBuf::new(),
            store: "memory".into(),
            store_password_file: PathBuf::new(),
            rate_per_sec: 20.0,
            burst: 100.0,
            web_push_contact: "mailto:root@localhost".into(),
            web_push_allow: Vec::new(),
            app_origin: String::new(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            trusted_proxies: Vec::new(),
            limits: RelayLimits::default(),
        }
    }
}

/// Whether `o` is an origin: `http(s)://host[:port]`, no path, no credentials.
fn is_origin(o: &str) -> bool {
    let Some(rest) = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

impl RelayFile {
    /// Loads `path`, refusing a file writable by group or others or owned by
    /// anyone but root or the relay's own user.
    pub fn load(path: &Path) -> Result<RelayFile, ConfigError> {
        // SAFETY: geteuid cannot fail and touches no memory.
        let me = unsafe { libc::geteuid() };
        RelayFile::parse(&read_config(path, me)?, path)
    }

    /// Parses and validates TOML text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<RelayFile, ConfigError> {
        let file: RelayFile = from_toml(text, path)?;
        file.validate().map_err(|e| invalid_key(text, path, e))?;
        Ok(file)
    }

    /// Checks values that did not come from a file (command-line overrides).
    pub fn check(&self) -> Result<(), String> {
        self.validate()
            .map_err(|(_, key, message)| format!("--{}: {message}", key.replace('_', "-")))
    }

    fn validate(&self) -> Result<(), (&'static str, &'static str, String)> {
        if !(self.rate_per_sec > 0.0 && self.rate_per_sec <= 1e6) {
            return Err((
                "",
                "rate_per_sec",
                "must be above 0 and at most 1000000".into(),
            ));
        }
        if !(self.burst >= 1.0 && self.burst <= 1e6) {
            return Err(("", "burst", "must be between 1 and 1000000".into()));
        }
        let st = &self.store;
        if !(st == "memory" || st.starts_with("redis://") || st.starts_with("redis+sentinel://")) {
            return Err((
                "",
                "store",
                format!(
                    "{:?}: \"memory\", or a Redis URL like \"redis://127.0.0.1:6379/0\" or \"redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster\"",
                    redacted(st)
                ),
            ));
        }
        let c = &self.web_push_contact;
        if !(c.starts_with("mailto:") || c.starts_with("https://")) || c.len() > 256 {
            return Err((
                "",
                "web_push_contact",
                "must be a mailto: or https: URL (push services use it to reach the admin)".into(),
            ));
        }
        if let Some(bad) = self.web_push_allow.iter().find(|o| !is_origin(o)) {
            return Err((
                "",
                "web_push_allow",
                format!(
                    "{bad:?} is not an origin like \"https://push.example.org\" or \"http://127.0.0.1:8080\""
                ),
            ));
        }
        if !self.app_origin.is_empty() && !is_origin(&self.app_origin) {
            return Err((
                "",
                "app_origin",
                format!(
                    "{:?} is not an origin like \"https://app.example.org\"",
                    self.app_origin
                ),
            ));
        }
        let (cert, key) = (self.tls_cert.as_os_str(), self.tls_key.as_os_str());
        if cert.is_empty() != key.is_empty() {
            return Err((
                "",
                if cert.is_empty() {
                    "tls_cert"
                } else {
                    "tls_key"
                },
                "tls_cert and tls_key go together: set both, or neither".into(),
            ));
        }
        if (!cert.is_empty() && self.tls_cert.is_relative())
            || (!key.is_empty() && self.tls_key.is_relative())
        {
            return Err((
                "",
                if self.tls_cert.is_relative() {
                    "tls_cert"
                } else {
                    "tls_key"
                },
                "must be an absolute path".into(),
            ));
        }
        if let Some(bad) = self
            .trusted_proxies
            .iter()
            .find(|p| AddrBlock::parse(p).is_none())
        {
            return Err((
                "",
                "trusted_proxies",
                format!("{bad:?} is not an address or a CIDR block like \"10.0.0.0/8\""),
            ));
        }
        let l = &self.limits;
        let checks: [(&'static str, bool, &str); 9] = [
            (
                "max_connections",
                (16..=1_000_000).contains(&l.max_connections),
                "must be between 16 and 1000000",
            ),
            (
                "reserved_for_authenticated_percent",
                l.reserved_for_authenticated_percent <= 90,
                "must be at most 90",
            ),
            (
                "max_connections_per_address",
                l.max_connections_per_address >= 1,
                "must be at least 1",
            ),
            (
                "header_timeout_secs",
                (1..=300).contains(&l.header_timeout_secs),
                "must be between 1 and 300",
            ),
            (
                "idle_timeout_secs",
                (1..=3600).contains(&l.idle_timeout_secs),
                "must be between 1 and 3600",
            ),
            (
                "anonymous_per_minute",
                l.anonymous_per_minute > 0.0 && l.anonymous_per_minute <= 1e6,
                "must be above 0 and at most 1000000",
            ),
            (
                "anonymous_burst",
                l.anonymous_burst >= 1.0 && l.anonymous_burst <= 1e6,
                "must be between 1 and 1000000",
            ),
            (
                "open_enrollments_per_address",
                l.open_enrollments_per_address >= 1,
                "must be at least 1",
            ),
            (
                "long_polls_per_token",
                l.long_polls_per_token >= 1,
                "must be at least 1",
            ),
        ];
        if let Some((key, _, msg)) = checks.iter().find(|(_, ok, _)| !ok) {
            return Err(("limits", key, (*msg).into()));
        }
        if !self.data.as_os_str().is_empty() && self.data.is_relative() {
            return Err(("", "data", "must be an absolute path".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_checked_and_passwords_never_shown() {
        assert_eq!(redacted("redis://:pw@h:6379/0"), "redis://***@h:6379/0");
        assert_eq!(redacted("redis://u:p@ss@h/0"), "redis://***@h/0");
        assert_eq!(redacted("redis://h:6379/0"), "redis://h:6379/0");
        assert_eq!(redacted("x@y"), "***@y");
        let mut f = RelayFile {
            store: "postgres://u:secret@h/db".into(),
            ..RelayFile::default()
        };
        let e = f.check().unwrap_err();
        assert!(e.contains("--store") && !e.contains("secret"), "{e}");
        for ok in ["memory", "redis://h:1/0", "redis+sentinel://a:1,b:2/m"] {
            f.store = ok.into();
            assert!(f.check().is_ok(), "{ok}");
        }
    }

    fn parse(t: &str) -> Result<RelayFile, ConfigError> {
        RelayFile::parse(t, Path::new("/etc/pushmfa-relay/relay.toml"))
    }

    #[test]
    fn shipped_file_documents_the_defaults() {
        assert_eq!(parse(SHIPPED_RELAY_CONFIG).unwrap(), RelayFile::default());
        let uncommented: String = SHIPPED_RELAY_CONFIG
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(t) if t.split_once(" = ").is_some() => t,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(uncommented.contains("\nburst = 100.0"));
        assert_eq!(parse(&uncommented).unwrap(), RelayFile::default());
    }

    #[test]
    fn values_are_read_and_errors_name_line_and_key() {
        let f = parse("listen = \"0.0.0.0:9000\"\ndata = \"/srv/relay\"\nburst = 5.0\n").unwrap();
        assert_eq!(f.listen.port(), 9000);
        assert_eq!(f.data, Path::new("/srv/relay"));
        assert_eq!(f.burst, 5.0);

        let e = parse("listen = \"127.0.0.1:1\"\nburts = 5.0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/pushmfa-relay/relay.toml:2:1: key `burts`"),
            "{e}"
        );
        let e = parse("\nrate_per_sec = 0.0\n").unwrap_err().to_string();
        assert!(
            e.contains(":2:1: key `rate_per_sec`: must be above 0"),
            "{e}"
        );
        let e = parse("listen = \"localhost\"\n").unwrap_err().to_string();
        assert!(e.contains(":1:"), "{e}");
        let e = parse("data = \"relative\"\n").unwrap_err().to_string();
        assert!(e.contains("key `data`: must be an absolute path"), "{e}");
        // Garbage and truncation.
        assert!(parse("\u{0}\u{1}garbage").is_err());
        assert!(parse("listen = \"127.0.0.1:").is_err());
    }

    #[test]
    fn limits_and_trusted_proxies_are_checked() {
        let f =
            parse("trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n[limits]\nmax_connections = 100\n")
                .unwrap();
        assert_eq!(f.limits.max_connections, 100);
        let e = parse("trusted_proxies = [\"10.0.0.0/33\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":1:1: key `trusted_proxies`"), "{e}");
        let e = parse("[limits]\n\nheader_timeout_secs = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":3:1: key `limits.header_timeout_secs`: must be between 1 and 300"),
            "{e}"
        );
        assert!(parse("[limits]\nmax_conections = 5\n").is_err());
    }

    #[test]
    fn address_blocks_match_their_addresses_only() {
        let b = |s| AddrBlock::parse(s).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(b("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!b("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(b("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")), "v4-mapped");
        assert!(b("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!b("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(b("2001:db8::/32").contains(ip("2001:db8:1::5")));
        assert!(!b("2001:db8::/32").contains(ip("10.0.0.1")));
        assert!(b("0.0.0.0/0").contains(ip("192.0.2.1")));
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/40",
            "::1/129",
            "host",
            "10.0.0.0/8/8",
        ] {
            assert!(AddrBlock::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn oversized_and_insecure_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "#".repeat(crate::MAX_CONFIG_LEN as usize + 1)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = RelayFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
        std::fs::write(&path, "burst = 2.0\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = RelayFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("refusing to use"), "{e}");
    }
}
