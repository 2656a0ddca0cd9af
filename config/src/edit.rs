//! Edits of a configuration file that keep its comments and layout
//! (used by `pushmfa configure`). Every edit is validated as a whole
//! configuration before it is returned.

use crate::{Config, ConfigError};
use std::path::Path;
use toml_edit::{DocumentMut, Item, Table, value};

/// What `pushmfa configure` may change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Use this relay as the push backend (`backend.kind = "relay"`,
    /// `backend.url`); several: instances of one relay, tried in order.
    /// Empty: no change.
    pub relay_urls: Vec<String>,
    /// Recovery codes only (`backend.kind = "none"`).
    pub no_relay: bool,
    /// The host name shown on the phone (`push.host_name`).
    pub host_name: Option<String>,
}

impl Changes {
    /// Only this: use the relay at `url`.
    pub fn relay(url: &str) -> Changes {
        Changes {
            relay_urls: vec![url.into()],
            ..Changes::default()
        }
    }
}

#[derive(Debug)]
pub enum EditError {
    /// The file is not valid TOML (it is left alone).
    Parse(String),
    /// A section the edit needs is not a table, e.g. `backend = 1`.
    NotATable(&'static str),
    /// The result would not load.
    Invalid(ConfigError),
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EditError::Parse(e) => write!(f, "cannot parse the file, fix it first: {e}"),
            EditError::NotATable(s) => write!(f, "`{s}` is not a [{s}] section"),
            EditError::Invalid(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for EditError {}

/// Applies `changes` to the TOML `text` and returns the new text, which is
/// checked to load as a configuration (`path` only names it in errors).
pub fn apply(text: &str, changes: &Changes, path: &Path) -> Result<String, EditError> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Parse(e.to_string()))?;
    if let [url] = changes.relay_urls.as_slice() {
        let backend = section(&mut doc, "backend")?;
        set(backend, "kind", "relay");
        set(backend, "url", url.trim_end_matches('/'));
    } else if !changes.relay_urls.is_empty() {
        let backend = section(&mut doc, "backend")?;
        set(backend, "kind", "relay");
        let list: toml_edit::Array = changes
            .relay_urls
            .iter()
            .map(|u| u.trim_end_matches('/'))
            .collect();
        let decor = backend
            .get("url")
            .and_then(Item::as_value)
            .map(|v| v.decor().clone());
        let mut v = toml_edit::Value::Array(list);
        if let Some(d) = decor {
            *v.decor_mut() = d;
        }
        backend["url"] = Item::Value(v);
    } else if changes.no_relay {
        set(section(&mut doc, "backend")?, "kind", "none");
    }
    if let Some(name) = &changes.host_name {
        set(section(&mut doc, "push")?, "host_name", name);
    }
    let out = doc.to_string();
    Config::parse(&out, path).map_err(EditError::Invalid)?;
    Ok(out)
}

/// Sets a string, keeping the comment and spacing around an existing value.
fn set(table: &mut Table, key: &str, new: &str) {
    match table.get_mut(key).and_then(Item::as_value_mut) {
        Some(v) => {
            let decor = v.decor().clone();
            *v = new.into();
            *v.decor_mut() = decor;
        }
        None => table[key] = value(new),
    }
}

fn section<'a>(doc: &'a mut DocumentMut, name: &'static str) -> Result<&'a mut Table, EditError> {
    let item = doc.entry(name).or_insert_with(|| Item::Table(Table::new()));
    item.as_table_mut().ok_or(EditError::NotATable(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackendKind, SHIPPED_CONFIG};

    #[test]
    fn sets_the_relay_in_the_shipped_file_and_keeps_every_comment() {
        let out = apply(
            SHIPPED_CONFIG,
            &Changes::relay("https://relay.example.org/"),
            Path::new("t"),
        )
        .unwrap();
        let cfg = Config::parse(&out, Path::new("t")).unwrap();
        assert_eq!(cfg.backend.kind, BackendKind::Relay);
        assert_eq!(cfg.backend.url.first(), "https://relay.example.org");
        for line in SHIPPED_CONFIG.lines().filter(|l| l.starts_with('#')) {
            assert!(out.contains(line), "lost: {line}");
        }
        // Only the two keys were added, right under [backend].
        assert!(out.contains("[backend]\nkind = \"relay\"\nurl = \"https://relay.example.org\"\n"));
        assert_eq!(out.lines().count(), SHIPPED_CONFIG.lines().count() + 2);
    }

    #[test]
    fn changes_existing_keys_in_place_and_can_switch_back() {
        let text = "[backend]\nkind = \"relay\" # ours\nurl = \"https://old.example\"\n";
        let out = apply(
            text,
            &Changes::relay("http://127.0.0.1:8480"),
            Path::new("t"),
        )
        .unwrap();
        assert_eq!(
            out,
            "[backend]\nkind = \"relay\" # ours\nurl = \"http://127.0.0.1:8480\"\n"
        );
        let several = apply(
            "[backend]\nurl = \"https://old\" # keep me\n",
            &Changes {
                relay_urls: vec!["https://a.example/".into(), "https://b.example".into()],
                ..Changes::default()
            },
            Path::new("/x"),
        )
        .unwrap();
        assert!(
            several.contains("url = [\"https://a.example\", \"https://b.example\"] # keep me"),
            "{several}"
        );
        let off = Changes {
            no_relay: true,
            ..Changes::default()
        };
        let out = apply(&out, &off, Path::new("t")).unwrap();
        assert!(out.starts_with("[backend]\nkind = \"none\" # ours\n"));
        let named = Changes {
            host_name: Some("db1".into()),
            ..Changes::default()
        };
        let out = apply("", &named, Path::new("t")).unwrap();
        assert_eq!(
            Config::parse(&out, Path::new("t")).unwrap().push.host_name,
            "db1"
        );
    }

    #[test]
    fn refuses_what_would_not_load_and_garbage() {
        let e = apply(
            "",
            &Changes::relay("relay.example.org"),
            Path::new("/etc/x.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("backend.url"), "{e}");
        let e = apply(
            "[backend\nkind=",
            &Changes::relay("https://r"),
            Path::new("t"),
        )
        .unwrap_err();
        assert!(matches!(e, EditError::Parse(_)), "{e}");
        let e = apply(
            "backend = 1\n",
            &Changes::relay("https://r"),
            Path::new("t"),
        )
        .unwrap_err();
        assert!(matches!(e, EditError::NotATable("backend")), "{e}");
        // An unrelated error already in the file is reported, not written.
        let e = apply(
            "[push]\nttl_secs = 1\n",
            &Changes::relay("https://r"),
            Path::new("t"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("ttl_secs"), "{e}");
        // Truncated input.
        let e = apply(
            "[backend]\nurl = \"https://",
            &Changes::relay("https://r"),
            Path::new("t"),
        )
        .unwrap_err();
        assert!(matches!(e, EditError::Parse(_)), "{e}");
    }
}
