//! A real OpenSSH sshd and ssh client (root only): a throwaway user, sshd
//! on 127.0.0.1 in a private mount namespace whose /etc/pam.d/sshd is the
//! test's own stack (the machine's file is never touched), and an askpass
//! program that records every prompt the ssh client shows and answers it
//! the way a user would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A system user created for one test and removed with its home on drop.
pub struct SystemUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl SystemUser {
    pub fn create(prefix: &str) -> SystemUser {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{prefix}{}x{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let ok = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "useradd {name} failed");
        let user = nix::unistd::User::from_name(&name)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no user {name}"));
        SystemUser {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .args(["-r", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// sshd in its own mount namespace, with `pam_stack` as /etc/pam.d/sshd.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub user_key: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// Starts sshd for `user` (public key + keyboard-interactive) in `dir`.
    pub fn start(dir: &Path, user: &SystemUser, pam_stack: &str) -> Sshd {
        Sshd::start_with(dir, user, pam_stack, "publickey,keyboard-interactive")
    }

    /// Starts sshd with the given `AuthenticationMethods`.
    pub fn start_with(dir: &Path, user: &SystemUser, pam_stack: &str, methods: &str) -> Sshd {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
        let host_key = dir.join("host_key");
        let user_key = dir.join("user_key");
        for k in [&host_key, &user_key] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(k));
        }
        let home = PathBuf::from(format!("/home/{}", user.name));
        let ssh_dir = home.join(".ssh");
        std::fs::create_dir_all(&ssh_dir).unwrap_or_else(|e| panic!("{e}"));
        // Appended: several sshd instances may serve one user.
        let public =
            std::fs::read(user_key.with_extension("pub")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(ssh_dir.join("authorized_keys"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, &public))
            .unwrap_or_else(|e| panic!("authorized_keys: {e}"));
        run(Command::new("chown")
            .args(["-R", &format!("{}:{}", user.uid, user.gid)])
            .arg(&ssh_dir));
        run(Command::new("chmod").arg("700").arg(&ssh_dir));
        let pam = dir.join("pam-sshd");
        std::fs::write(&pam, pam_stack).unwrap_or_else(|e| panic!("{e}"));
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nUsePAM yes\n\
                 KbdInteractiveAuthentication yes\nPasswordAuthentication no\nPermitRootLogin no\n\
                 AuthenticationMethods {methods}\nAllowUsers {}\n",
                host_key.display(),
                dir.join("sshd.pid").display(),
                user.name
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all("/run/sshd").unwrap_or_else(|e| panic!("/run/sshd: {e}"));
        let log = dir.join("sshd.log");
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind '{}' /etc/pam.d/sshd && exec /usr/sbin/sshd -D -f '{}' -E '{}'",
                pam.display(),
                config.display(),
                log.display()
            ))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("unshare sshd: {e}"));
        // Ready when it accepts connections (bounded; sshd has no readiness signal here).
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd {
            child,
            port,
            dir: dir.to_owned(),
            user_key,
        }
    }
}

/// What the askpass program does at each successive prompt.
pub enum Act {
    /// Approve on the phone with the number in the prompt, then press Enter.
    Approve,
    /// Deny on the phone, then press Enter.
    Deny,
    /// Press Enter without touching the phone.
    Enter,
    /// Type this (a recovery code).
    Type(String),
    /// Copy the offline request from the prompt into the authenticator
    /// (`pushmfa-authenticator offline`) and type the code it shows.
    Offline,
    /// Enroll the authenticator from the enrollment URI in the prompt (in
    /// the background, as a phone would while the prompt waits), then Enter.
    Enroll,
}

/// The result of one ssh run.
pub struct SshRun {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Every prompt the ssh client showed, in order.
    pub prompts: Vec<String>,
    pub took: Duration,
}

/// Runs `ssh user@127.0.0.1 cmd` with an askpass that follows `plan` (one
/// act per prompt; any further prompt gets Enter).
pub fn ssh(
    sshd: &Sshd,
    user: &str,
    authenticator: &Path,
    store: &Path,
    plan: &[Act],
    extra: &[&str],
    cmd: &str,
) -> SshRun {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = sshd
        .dir
        .join(format!("ssh{}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let plan_text: String = plan
        .iter()
        .map(|a| match a {
            Act::Approve => "approve\n".to_string(),
            Act::Deny => "deny\n".to_string(),
            Act::Enter => "enter\n".to_string(),
            Act::Type(t) => format!("type {t}\n"),
            Act::Offline => "offline\n".to_string(),
            Act::Enroll => "enroll\n".to_string(),
        })
        .collect();
    std::fs::write(dir.join("plan"), plan_text).unwrap_or_else(|e| panic!("{e}"));
    let askpass = dir.join("askpass");
    std::fs::write(
        &askpass,
        format!(
            r#"#!/bin/sh
# Records the prompt, then answers it as the plan says.
d='{d}'
printf '%s\0' "$1" >> "$d/prompts"
n=$(( $(cat "$d/count" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$d/count"
act=$(sed -n "${{n}}p" "$d/plan")
phone() {{ '{auth}' --store '{store}' "$@" --wait 10 >> "$d/phone.log" 2>&1; }}
case "$act" in
  approve) phone approve --number "$(printf '%s' "$1" | grep -o 'number [0-9][0-9]' | head -n1 | cut -d' ' -f2)"; echo ;;
  deny) phone deny; echo ;;
  type\ *) echo "${{act#type }}" ;;
  enroll) uri=$(printf '%s' "$1" | grep -o 'pushmfa://enroll?[^ ]*' | head -n1)
    ( '{auth}' --store '{store}' enroll "$uri" --name "first phone" >> "$d/phone.log" 2>&1 & ); echo ;;
  offline) req=$(printf '%s' "$1" | grep -o 'PUSHMFA-OFFLINE:[A-Z2-7]*' | head -n1)
    '{auth}' --store '{store}' offline --yes "$req" 2>>"$d/phone.log" | tee -a "$d/phone.log" | sed -n 's/^Code: //p' ;;
  *) echo ;;
esac
"#,
            d = dir.display(),
            auth = authenticator.display(),
            store = store.display(),
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    run(Command::new("chmod").arg("755").arg(&askpass));
    let start = Instant::now();
    let out = Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"])
        .args(extra)
        .arg("-i")
        .arg(&sshd.user_key)
        .args([
            "-p",
            &sshd.port.to_string(),
            &format!("{user}@127.0.0.1"),
            cmd,
        ])
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", "")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("ssh: {e}"));
    let prompts = std::fs::read_to_string(dir.join("prompts")).unwrap_or_default();
    SshRun {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        // One entry per prompt; a prompt may span lines (sshd puts held-back
        // messages before the next prompt).
        prompts: prompts
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect(),
        took: start.elapsed(),
    }
}

/// The result of one sudo run.
pub struct SudoRun {
    pub status: Option<i32>,
    pub stdout: String,
    /// Everything sudo wrote to stderr (prompts included), in order.
    pub stderr: String,
}

/// Runs `sudo -S -k CMD` as `user` (real setuid sudo) in a private mount
/// namespace whose /etc/pam.d/sudo and /etc/sudoers are the test's own.
/// `act(prompt_number, stdin)` is called at each prompt with the prompt
/// text so far and writes the user's answer.
pub fn sudo(
    dir: &Path,
    user: &SystemUser,
    pam_stack: &str,
    cmd: &str,
    mut act: impl FnMut(usize, &str, &mut dyn std::io::Write),
) -> SudoRun {
    use std::io::Read;
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let pam = dir.join("pam-sudo");
    std::fs::write(&pam, pam_stack).unwrap_or_else(|e| panic!("{e}"));
    let sudoers = dir.join("sudoers");
    std::fs::write(
        &sudoers,
        format!(
            "Defaults !lecture\nroot ALL=(ALL) ALL\n{} ALL=(ALL) ALL\n",
            user.name
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    run(Command::new("chmod").arg("440").arg(&sudoers));
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind '{}' /etc/pam.d/sudo && mount --bind '{}' /etc/sudoers && exec runuser -u '{}' -- sudo -S -k {cmd}",
            pam.display(),
            sudoers.display(),
            user.name
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("sudo: {e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
    let mut err = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
    let mut seen = Vec::new();
    let mut prompts = 0;
    // Where the text of the prompt being read starts (after the last one).
    let mut since = 0;
    let mut byte = [0u8; 1];
    while let Ok(1) = err.read(&mut byte) {
        seen.push(byte[0]);
        if seen.ends_with(b": ") {
            let text = String::from_utf8_lossy(&seen[since..]).into_owned();
            let last = text.rsplit('\n').next().unwrap_or_default();
            if last.ends_with("recovery code): ")
                || last.ends_with("Recovery code: ")
                || last.ends_with("if your phone is offline): ")
                || last.ends_with("the account was added: ")
                || last.ends_with("written them down: ")
            {
                act(prompts, &text, &mut stdin);
                prompts += 1;
                since = seen.len();
            }
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    SudoRun {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&seen).into_owned(),
    }
}
