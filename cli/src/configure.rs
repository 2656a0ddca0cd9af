//! `pushmfa configure`: changes the configuration file in place (comments
//! kept), refusing any result that would not load, and replaces it
//! atomically with the same owner and mode (`replace_file`).

use pushmfa_config::edit::{self, Changes};
use pushmfa_config::{OpenError, SHIPPED_CONFIG, open_secure_file, replace_file};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Edits `path` (created from the shipped file if missing). Returns the new text.
pub fn edit_file(path: &Path, changes: &Changes) -> Result<String, String> {
    let shown = path.display();
    let (text, owner, mode) = match open_secure_file(path, 0) {
        Ok(mut f) => {
            let meta = f.metadata().map_err(|e| format!("{shown}: {e}"))?;
            let mut text = String::new();
            f.read_to_string(&mut text)
                .map_err(|e| format!("cannot read {shown}: {e}"))?;
            (text, Some((meta.uid(), meta.gid())), meta.mode() & 0o7777)
        }
        Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
            (SHIPPED_CONFIG.to_owned(), None, 0o644)
        }
        Err(OpenError::Io(e)) => return Err(format!("cannot read {shown}: {e}")),
        Err(OpenError::Insecure(why)) => {
            return Err(format!("refusing to edit {shown}: {why}"));
        }
    };
    let new = edit::apply(&text, changes, path).map_err(|e| format!("{shown}: {e}"))?;
    if new != text {
        replace_file(path, new.as_bytes(), mode, owner).map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::PermissionDenied {
                " (run it as root)"
            } else {
                ""
            };
            format!("cannot write {shown}: {e}{hint}")
        })?;
    }
    Ok(new)
}

/// GET <url>/healthz: whether the relay answers, in words, trusting the
/// certificates the helper would (`ca_file`, else the system's).
pub fn probe_relay(url: &str, ca_file: &str, timeout: Duration) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout);
    if let Some(pem) = pushmfa_config::trusted_roots(ca_file)? {
        builder = builder.tls_built_in_root_certs(false);
        for c in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string())? {
            builder = builder.add_root_certificate(c);
        }
    }
    let http = builder.build().map_err(|e| e.to_string())?;
    let health = format!("{}/healthz", url.trim_end_matches('/'));
    let status = rt
        .block_on(async { http.get(&health).send().await })
        .map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {} s", timeout.as_secs())
            } else {
                format!("cannot connect: {e}")
            }
        })?
        .status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{health} answered {status}"))
    }
}

/// `pushmfa configure`: edit the file, check the relay, restart the helper.
pub fn run(config: &Path, changes: &Changes) -> ExitCode {
    if let Err(e) = edit_file(config, changes) {
        eprintln!("pushmfa: {e}");
        return ExitCode::FAILURE;
    }
    println!("Updated {}.", config.display());
    let ca_file = pushmfa_config::Config::load(config, 0)
        .map(|c| c.backend.ca_file)
        .unwrap_or_default();
    for url in &changes.relay_urls {
        let url = url.trim_end_matches('/');
        match probe_relay(url, &ca_file, Duration::from_secs(5)) {
            Ok(()) => println!("The relay at {url} answers."),
            Err(e) => println!(
                "warning: the relay at {url} does not answer yet ({e}); logins ask for a recovery code until it does, see [policy] failmode"
            ),
        }
    }
    // Socket activation starts the helper on the next login; a running one must restart.
    if Path::new("/run/systemd/system").is_dir() {
        let status = std::process::Command::new("systemctl")
            .args(["try-restart", "pushmfa-helper.service"])
            .status();
        match status {
            Ok(s) if s.success() => println!("Restarted pushmfa-helper (if it was running)."),
            _ => println!(
                "warning: could not restart pushmfa-helper; run: systemctl restart pushmfa-helper.service"
            ),
        }
    } else {
        println!("Restart pushmfa-helper, if it is running, for the change to take effect.");
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn edits_in_place_keeping_mode_and_creates_from_the_shipped_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pushmfa.toml");
        edit_file(&path, &Changes::relay("https://r.example")).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("url = \"https://r.example\""));
        assert!(text.contains("# Every option is listed here"));
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o644);

        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        edit_file(&path, &Changes::relay("https://s.example")).unwrap();
        assert!(
            fs::read_to_string(&path)
                .unwrap()
                .contains("https://s.example")
        );
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_bad_results_and_insecure_files_and_leaves_them_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pushmfa.toml");
        fs::write(&path, "[push]\nttl_secs = 1\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = edit_file(&path, &Changes::relay("https://r.example")).unwrap_err();
        assert!(e.contains("ttl_secs"), "{e}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "[push]\nttl_secs = 1\n");

        fs::write(&path, "").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let e = edit_file(&path, &Changes::relay("https://r.example")).unwrap_err();
        assert!(e.contains("refusing to edit"), "{e}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
    }
}
