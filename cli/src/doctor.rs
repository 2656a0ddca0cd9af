//! `pushmfa doctor`: checks an installation and says exactly what to fix.

use pushmfa_config::{BackendKind, Config, ConfigError, check_secure_dir};
use pushmfa_protocol::admin_client as client;
use pushmfa_protocol::ipc::{AdminReply, AdminRequest, UserReport};
use pushmfa_state::{Store, UserName};
use std::fmt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub status: Status,
    pub what: String,
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        write!(f, "[{tag}] {}: {}", self.what, self.detail)
    }
}

/// The relay must answer for push logins to work.
fn check_relay(url: &str, ca_file: &str) -> Check {
    match crate::configure::probe_relay(url, ca_file, Duration::from_secs(5)) {
        Ok(()) => check(Status::Ok, "relay", format!("{url} answers")),
        Err(e) => check(
            Status::Fail,
            "relay",
            format!(
                "{url} does not answer ({e}): push logins cannot reach phones; start the relay or fix the URL with `pushmfa configure --relay-url`"
            ),
        ),
    }
}

fn check(status: Status, what: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        status,
        what: what.into(),
        detail: detail.into(),
    }
}

/// Runs every check; later checks that depend on a failed one are skipped.
pub fn run(config_path: &Path, socket_override: Option<&Path>) -> Vec<Check> {
    let mut out = Vec::new();
    // Whose files these should be: the state directory's owner is the helper's user.
    let default_cfg = Config::default();
    let cfg = match Config::load(config_path, helper_uid_guess(&default_cfg.helper.state_dir)) {
        Ok(c) => {
            out.push(check(
                Status::Ok,
                "configuration",
                config_path.display().to_string(),
            ));
            c
        }
        Err(ConfigError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
            out.push(check(
                Status::Warn,
                "configuration",
                format!(
                    "{} does not exist; using built-in defaults",
                    config_path.display()
                ),
            ));
            default_cfg
        }
        Err(e) => {
            out.push(check(Status::Fail, "configuration", e.to_string()));
            return out;
        }
    };
    let helper_uid = helper_uid_guess(&cfg.helper.state_dir);
    out.extend(check_state(&cfg.helper.state_dir, helper_uid));
    let socket = socket_override.map_or_else(|| cfg.helper.socket.clone(), Path::to_path_buf);
    out.push(check_socket(&socket));
    if cfg.backend.kind == BackendKind::Relay {
        for url in &cfg.backend.url.0 {
            out.push(check_relay(url, &cfg.backend.ca_file));
        }
        if cfg.policy.failmode_anywhere_safe() {
            out.push(check(
                Status::Warn,
                "failmode",
                "policy.failmode = \"safe\": while the relay cannot be reached, logins pass with NO second factor; anyone who can cut this host off from the relay needs only the password (\"secure\" asks for a recovery code instead)",
            ));
        }
    }
    let pam = check_pam_stack(Path::new("/etc/pam.d"), &socket);
    let enabled = pam.status == Status::Ok;
    out.push(pam);
    // With the module on, users in scope who have nothing to pass with are
    // refused: say so (root only; skipped when the helper cannot say).
    if enabled {
        if let Ok(users) = crate::rollout::fetch(&socket) {
            out.push(check_rollout(&users));
        }
    }
    out
}

/// Who would be locked out now that the module is enabled.
fn check_rollout(users: &[UserReport]) -> Check {
    let locked: Vec<&str> = users
        .iter()
        .filter(|u| u.would_be_locked_out)
        .map(|u| u.user.as_str())
        .collect();
    if locked.is_empty() {
        let n = users.iter().filter(|u| u.in_scope).count();
        return check(
            Status::Ok,
            "rollout",
            format!("all {n} users in scope can pass the second factor"),
        );
    }
    let shown = locked
        .iter()
        .take(10)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let more = if locked.len() > 10 {
        format!(" and {} more", locked.len() - 10)
    } else {
        String::new()
    };
    check(
        Status::Warn,
        "rollout",
        format!(
            "the PAM stack is enabled and {} users in scope have no device and no recovery code, so they cannot log in: {shown}{more} (pushmfa report; pushmfa enroll --user NAME)",
            locked.len()
        ),
    )
}

fn helper_uid_guess(state_dir: &Path) -> u32 {
    std::fs::metadata(state_dir).map_or(0, |m| m.uid())
}

fn check_state(dir: &Path, helper_uid: u32) -> Vec<Check> {
    let what = format!("state directory {}", dir.display());
    if !dir.exists() {
        return vec![check(
            Status::Fail,
            what,
            "missing: start pushmfa-helper once (it creates it), or create it mode 0700 owned by the helper's user",
        )];
    }
    if let Err(e) = check_secure_dir(dir, helper_uid) {
        let detail = match e {
            pushmfa_config::OpenError::Insecure(r) => r.to_string(),
            pushmfa_config::OpenError::Io(e) => e.to_string(),
        };
        return vec![check(Status::Fail, what, detail)];
    }
    let users = dir.join("users");
    let entries = match std::fs::read_dir(&users) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return vec![check(
                Status::Warn,
                what,
                "cannot read it: run `sudo pushmfa doctor` to check state files",
            )];
        }
        Err(e) => {
            return vec![check(
                Status::Fail,
                what,
                format!("{}: {e}", users.display()),
            )];
        }
    };
    let store = match Store::open(dir, helper_uid) {
        Ok(s) => s,
        Err(e) => return vec![check(Status::Fail, what, e.to_string())],
    };
    let mut out = Vec::new();
    let mut users_ok = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(user) = name.strip_suffix(".json").and_then(UserName::parse) else {
            if !name.starts_with('.') {
                out.push(check(
                    Status::Warn,
                    "state file",
                    format!(
                        "{}: not a user state file; remove it",
                        entry.path().display()
                    ),
                ));
            }
            continue;
        };
        match store.load(&user) {
            Ok(_) => users_ok += 1,
            Err(e) => out.push(check(
                Status::Fail,
                format!("state of {user}"),
                e.to_string(),
            )),
        }
    }
    out.insert(
        0,
        check(
            Status::Ok,
            what,
            format!("secure; {users_ok} user state file(s) readable"),
        ),
    );
    out
}

fn check_socket(socket: &Path) -> Check {
    let what = format!("helper socket {}", socket.display());
    match std::fs::symlink_metadata(socket) {
        Err(_) => {
            return check(
                Status::Fail,
                what,
                "missing: start the helper (systemctl start pushmfa-helper.socket, or pushmfa-helper --config FILE)",
            );
        }
        Ok(m) if !m.file_type().is_socket() => {
            return check(
                Status::Fail,
                what,
                "exists but is not a socket; remove it and restart the helper",
            );
        }
        Ok(_) => {}
    }
    match client::call(socket, AdminRequest::Ping {}, Duration::from_secs(5)) {
        Ok(AdminReply::Pong {
            version,
            helper_uid,
        }) => {
            let mine = env!("CARGO_PKG_VERSION");
            if version == mine {
                check(
                    Status::Ok,
                    what,
                    format!("helper {version} answers (uid {helper_uid})"),
                )
            } else {
                check(
                    Status::Warn,
                    what,
                    format!(
                        "helper {version} answers, but this CLI is {mine}: restart the helper after upgrading"
                    ),
                )
            }
        }
        Ok(_) => check(
            Status::Fail,
            what,
            "unexpected answer; is another program listening there?",
        ),
        Err(e) => check(Status::Fail, what, e.to_string()),
    }
}

fn check_pam_stack(pam_dir: &Path, socket: &Path) -> Check {
    let mut users: Vec<(PathBuf, String)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(pam_dir) {
        for e in entries.flatten() {
            if let Ok(text) = std::fs::read_to_string(e.path()) {
                for line in text.lines() {
                    let l = line.trim();
                    if !l.starts_with('#') && l.contains("pam_pushmfa.so") {
                        users.push((e.path(), l.to_owned()));
                    }
                }
            }
        }
    }
    if users.is_empty() {
        return check(
            Status::Warn,
            "PAM",
            format!(
                "pam_pushmfa.so is not in any file under {}: enable it with `pam-auth-update --enable pushmfa`",
                pam_dir.display()
            ),
        );
    }
    let default_socket =
        Path::new(pushmfa_config::Config::default().helper.socket.as_os_str()).to_path_buf();
    let mut files = Vec::new();
    for (path, line) in &users {
        let arg_socket = line
            .split_whitespace()
            .find_map(|a| a.strip_prefix("socket="))
            .map_or(default_socket.clone(), PathBuf::from);
        if arg_socket != socket {
            return check(
                Status::Fail,
                "PAM",
                format!(
                    "{}: module uses socket {} but the helper listens on {}",
                    path.display(),
                    arg_socket.display(),
                    socket.display()
                ),
            );
        }
        files.push(path.display().to_string());
    }
    files.dedup();
    check(
        Status::Ok,
        "PAM",
        format!("enabled in {}", files.join(", ")),
    )
}

/// `pushmfa doctor`: prints every check; fails if any failed.
pub fn report(config: &Path, socket: Option<&Path>) -> ExitCode {
    let checks = run(config, socket);
    for c in &checks {
        println!("{c}");
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed == 0 {
        println!("\nAll checks passed.");
        ExitCode::SUCCESS
    } else {
        println!("\n{failed} check(s) failed: fix them in the order shown.");
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn warns_when_users_in_scope_would_be_locked_out() {
        let row = |user: &str, locked| UserReport {
            user: user.into(),
            in_scope: true,
            rule: "default".into(),
            devices: 0,
            codes_left: 0,
            locked_out: false,
            last_method: None,
            last_at: None,
            would_be_locked_out: locked,
        };
        let ok = check_rollout(&[row("alice", false)]);
        assert_eq!(ok.status, Status::Ok);
        let many: Vec<UserReport> = (0..12).map(|i| row(&format!("u{i}"), true)).collect();
        let warn = check_rollout(&many);
        assert_eq!(warn.status, Status::Warn);
        assert!(warn.detail.contains("12 users in scope"), "{}", warn.detail);
        assert!(warn.detail.contains("u9 and 2 more"), "{}", warn.detail);
    }

    #[test]
    fn reports_insecure_state_dir_and_missing_socket() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let cfg_path = dir.path().join("pushmfa.toml");
        std::fs::write(
            &cfg_path,
            format!(
                "[helper]\nstate_dir = \"{}\"\nsocket = \"{}/none.sock\"\n",
                state.display(),
                dir.path().display()
            ),
        )
        .unwrap();
        Store::open(&state, nix::unistd::geteuid().as_raw()).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        let checks = run(&cfg_path, None);
        let text: Vec<String> = checks.iter().map(|c| c.to_string()).collect();
        assert!(text[0].starts_with("[ok  ] configuration"), "{text:?}");
        assert!(
            text[1].contains("FAIL") && text[1].contains("chmod go-w"),
            "{text:?}"
        );
        assert!(
            text[2].contains("FAIL") && text[2].contains("missing: start the helper"),
            "{text:?}"
        );
    }

    #[test]
    fn says_what_failmode_safe_gives_away() {
        let dir = tempfile::tempdir().unwrap();
        let cfg_path = dir.path().join("pushmfa.toml");
        std::fs::write(
            &cfg_path,
            "[backend]\nkind = \"relay\"\nurl = \"http://127.0.0.1:9\"\n[policy]\nfailmode = \"safe\"\n",
        )
        .unwrap();
        let checks = run(&cfg_path, Some(&dir.path().join("none.sock")));
        let safe = checks.iter().find(|c| c.what == "failmode").unwrap();
        assert_eq!(safe.status, Status::Warn);
        assert!(safe.detail.contains("NO second factor"), "{safe}");
    }

    #[test]
    fn reports_config_errors_with_location() {
        let dir = tempfile::tempdir().unwrap();
        let cfg_path = dir.path().join("pushmfa.toml");
        std::fs::write(&cfg_path, "[recovery]\nmax_tries = 3\ncolor = \"red\"\n").unwrap();
        let checks = run(&cfg_path, None);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Fail);
        assert!(
            checks[0].detail.contains(":3:1: key `color`"),
            "{}",
            checks[0]
        );
    }

    #[test]
    fn pam_socket_mismatch_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sudo"),
            "auth required pam_pushmfa.so socket=/tmp/a.sock\n",
        )
        .unwrap();
        let c = check_pam_stack(dir.path(), Path::new("/tmp/b.sock"));
        assert_eq!(c.status, Status::Fail, "{c}");
        let c = check_pam_stack(dir.path(), Path::new("/tmp/a.sock"));
        assert_eq!(c.status, Status::Ok, "{c}");
    }
}
