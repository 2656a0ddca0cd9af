//! Configuration of pushmfa-relay (`/etc/pushmfa-relay/relay.toml`).

use crate::{ConfigError, from_toml, invalid_key, read_config};
use serde::Deserialize;
use std::net::SocketAddr;
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
    pub rate_per_sec: f64,
    pub burst: f64,
    /// VAPID contact (`mailto:` or `https:`), sent to push services.
    pub web_push_contact: String,
    /// Push service origins allowed besides the browsers' own.
    pub web_push_allow: Vec<String>,
    /// The origin that serves the web app instead of this relay (empty:
    /// the relay serves it under /app/).
    pub app_origin: String,
}

impl Default for RelayFile {
    fn default() -> Self {
        RelayFile {
            listen: SocketAddr::from(([127, 0, 0, 1], 8480)),
            data: PathBuf::new(),
            rate_per_sec: 20.0,
            burst: 100.0,
            web_push_contact: "mailto:root@localhost".into(),
            web_push_allow: Vec::new(),
            app_origin: String::new(),
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
        if !self.data.as_os_str().is_empty() && self.data.is_relative() {
            return Err(("", "data", "must be an absolute path".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
