//! Harness for the end-to-end scenarios: a private directory per test with
//! its own helper process, configuration, state and PAM service files; logins
//! through real libpam, either in-process with `pam_start_confdir` or as a
//! separate `pamtester` process under pam_wrapper.
//!
//! Everything is unique per test (not per process): libtest runs tests as
//! threads of one process.

pub mod certs;
pub mod forge;
pub mod man;
pub mod pam;
pub mod push;
pub mod qr;
pub mod recorder;
pub mod sshd;
pub mod webapp;

use pushmfa_protocol::admin_client as client;
use pushmfa_protocol::ipc::{AdminReply, AdminRequest, UserStatus};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

pub use pam::{Answer, PamRun, Transcript};

/// PAM return codes (security/_pam_types.h).
pub mod rc {
    pub const SUCCESS: i32 = 0;
    pub const SERVICE_ERR: i32 = 3;
    pub const SYSTEM_ERR: i32 = 4;
    pub const PERM_DENIED: i32 = 6;
    pub const AUTH_ERR: i32 = 7;
    pub const AUTHINFO_UNAVAIL: i32 = 9;
    pub const MAXTRIES: i32 = 11;
    pub const CONV_ERR: i32 = 19;
    pub const IGNORE: i32 = 25;
}

/// Argon2id cost for tests: the scenario logic, not the KDF, is under test.
pub const CHEAP_ARGON2: &str = "argon2_memory_kib = 64\nargon2_iterations = 1\n";

/// `target/<profile>`, found from the running binary (tests run from `deps/`).
pub fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        dir
    }
}

fn must_exist(p: PathBuf) -> PathBuf {
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        p.display()
    );
    p
}

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds every binary and library of the workspace (the module, the
/// helper, the CLI, the relay, the authenticator) into the directory the
/// tests run from, once per test process. `cargo test -p pushmfa-tests`
/// builds only this package's own targets; with this, one scenario runs on
/// a fresh clone as `cargo test -p pushmfa-tests --test NAME`.
fn build_workspace() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = build_dir();
        let Some(target_dir) = dir.parent() else {
            return;
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--workspace", "--bins", "--lib", "--quiet"])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(workspace());
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        eprintln!("building the workspace's binaries for the scenarios: {cmd:?}");
        let status = cmd.status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "building the workspace failed ({status:?}); run `cargo build --workspace`"
        );
    });
}

/// `path`, built first if it is missing or older than its sources.
fn built(path: PathBuf, source_dirs: &[&str]) -> PathBuf {
    if !path.exists() || !is_fresh(&path, source_dirs) {
        build_workspace();
    }
    let path = must_exist(path);
    assert_fresh(&path, source_dirs);
    path
}

/// The built module; `PUSHMFA_MODULE` overrides (e.g. a release build).
/// `cargo build` leaves one copy in `target/<profile>/` and `cargo test`
/// another in `deps/`: the newer is used, and it must be newer than its
/// sources.
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PUSHMFA_MODULE") {
        return must_exist(PathBuf::from(p));
    }
    const SOURCES: &[&str] = &["pam_pushmfa/src", "protocol/src"];
    let dir = build_dir();
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let newest = || {
        [
            dir.join("libpam_pushmfa.so"),
            dir.join("deps/libpam_pushmfa.so"),
        ]
        .into_iter()
        .filter(|p| p.exists())
        .max_by_key(|p| mtime(p))
    };
    match newest() {
        Some(p) if is_fresh(&p, SOURCES) => p,
        _ => built(dir.join("libpam_pushmfa.so"), SOURCES),
    }
}

/// Whether `path` is at least as new as every file under `source_dirs`.
fn is_fresh(path: &Path, source_dirs: &[&str]) -> bool {
    let root = workspace();
    let sources = source_dirs
        .iter()
        .filter_map(|d| newest_mtime(&root.join(d)))
        .max();
    let built = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    match (sources, built) {
        (Some(src), Some(exe)) => exe >= src,
        _ => true,
    }
}

fn assert_fresh(path: &Path, source_dirs: &[&str]) {
    assert!(
        is_fresh(path, source_dirs),
        "{} is older than its sources: run `cargo test --workspace` (or `cargo build --workspace` first)",
        path.display()
    );
}

/// Newest modification time of the files under `dir` (or of the file).
fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    if dir.is_file() {
        return std::fs::metadata(dir).and_then(|m| m.modified()).ok();
    }
    let mut newest = None;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// A built binary of the workspace (`PUSHMFA_BIN_DIR` overrides the
/// directory). A binary that is missing, or older than the sources it is
/// built from, is built first (see [`build_workspace`]).
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("PUSHMFA_BIN_DIR") {
        return must_exist(PathBuf::from(dir).join(name));
    }
    // The sources each binary is built from.
    let dirs: &[&str] = match name {
        // The relay embeds the web app (not its tests or node_modules).
        "pushmfa-relay" => &[
            "relay/src",
            "protocol/src",
            "webapp/index.html",
            "webapp/app.css",
            "webapp/sw.js",
            "webapp/manifest.webmanifest",
            "webapp/js",
            "webapp/icons",
        ],
        "pushmfa-authenticator" => &["authenticator/src", "protocol/src"],
        "pushmfa" => &["cli/src", "protocol/src", "config/src", "state/src"],
        _ => &["helper/src", "protocol/src", "config/src", "state/src"],
    };
    built(build_dir().join(name), dirs)
}

/// The helper's stderr lines, with a wakeup for each new line.
type SharedLog = Arc<(Mutex<Vec<String>>, Condvar)>;

pub struct Helper {
    child: Child,
    log: SharedLog,
}

impl Helper {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test's world.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
    pub pam_dir: PathBuf,
    helper: Option<Helper>,
    /// uid and gid the helper runs as (None: as the test, usually root).
    run_as: Option<(u32, u32)>,
    /// Extra environment for the helper (nss_wrapper).
    helper_env: Vec<(String, String)>,
}

impl TestEnv {
    /// A fresh environment; `extra` is appended to the generated
    /// configuration (sections `[recovery]` etc. start after `[helper]`).
    /// Argon2id is made cheap unless `extra` sets its cost.
    pub fn new(extra: &str) -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("pushmfa-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        // Traversable by other users: some scenarios run clients as `nobody`.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
        let socket = dir.path().join("helper.sock");
        let state = dir.path().join("state");
        let config = dir.path().join("pushmfa.toml");
        let pam_dir = dir.path().join("pam.d");
        std::fs::create_dir(&pam_dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
        // Without "other", libpam falls back to it for unknown services.
        std::fs::write(
            pam_dir.join("other"),
            "auth required pam_deny.so\naccount required pam_deny.so\n",
        )
        .unwrap_or_else(|e| panic!("write: {e}"));
        // Keys of a `[helper]` table in `extra` join the one written here
        // (TOML allows a table once).
        let (helper_keys, extra) = split_table(extra, "[helper]");
        let extra = extra.as_str();
        let text = format!(
            "[helper]\nsocket = \"{}\"\nstate_dir = \"{}\"\n{helper_keys}{}",
            socket.display(),
            state.display(),
            if extra.contains("argon2_") {
                extra.to_owned()
            } else if extra.contains("[recovery]") {
                extra.replace("[recovery]\n", &format!("[recovery]\n{CHEAP_ARGON2}"))
            } else {
                format!("{extra}\n[recovery]\n{CHEAP_ARGON2}")
            }
        );
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("write config: {e}"));
        TestEnv {
            dir,
            socket,
            state,
            config,
            pam_dir,
            helper: None,
            run_as: None,
            helper_env: Vec::new(),
        }
    }

    /// Runs the helper as `uid:gid`, as in production (a dedicated user):
    /// it owns the state directory and the directory of its socket.
    pub fn helper_runs_as(&mut self, uid: u32, gid: u32) {
        let run = self.dir.path().join("run");
        for d in [&run, &self.state] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir: {e}"));
            std::os::unix::fs::chown(d, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown: {e}"));
        }
        std::fs::set_permissions(&self.state, std::fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
        let socket = run.join("helper.sock");
        let text = std::fs::read_to_string(&self.config)
            .unwrap_or_default()
            .replace(
                &format!("socket = \"{}\"", self.socket.display()),
                &format!("socket = \"{}\"", socket.display()),
            );
        std::fs::write(&self.config, text).unwrap_or_else(|e| panic!("write config: {e}"));
        self.socket = socket;
        self.run_as = Some((uid, gid));
    }

    /// Starts pushmfa-helper and waits until it listens (it says so on stderr).
    pub fn start_helper(&mut self) -> &Helper {
        let mut cmd = match self.run_as {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={gid}"),
                    "--clear-groups",
                ])
                .arg(bin("pushmfa-helper"));
                c
            }
            None => Command::new(bin("pushmfa-helper")),
        };
        cmd.arg("--config").arg(&self.config).arg("--log-stderr");
        cmd.envs(self.helper_env.iter().map(|(k, v)| (k, v)));
        self.spawn_helper(cmd, "listening on")
    }

    /// Users and groups the helper sees through NSS, from these files (in
    /// passwd(5) and group(5) form) instead of the machine's: nss_wrapper,
    /// preloaded into the helper only. Call before `start_helper`.
    pub fn nss(&mut self, passwd: &str, group: &str) {
        let (p, g) = (
            self.dir.path().join("passwd"),
            self.dir.path().join("group"),
        );
        std::fs::write(&p, passwd).unwrap_or_else(|e| panic!("write passwd: {e}"));
        std::fs::write(&g, group).unwrap_or_else(|e| panic!("write group: {e}"));
        self.helper_env = vec![
            ("LD_PRELOAD".into(), "libnss_wrapper.so".into()),
            ("NSS_WRAPPER_PASSWD".into(), p.display().to_string()),
            ("NSS_WRAPPER_GROUP".into(), g.display().to_string()),
        ];
    }

    /// Starts the helper the way systemd's socket activation does: another
    /// program owns the listening socket and execs the helper with it as fd 3
    /// (LISTEN_FDS/LISTEN_PID) at the first connection.
    pub fn start_helper_socket_activated(&mut self) -> &Helper {
        let mut cmd = Command::new("systemd-socket-activate");
        cmd.arg("-l")
            .arg(&self.socket)
            .arg(bin("pushmfa-helper"))
            .arg("--config")
            .arg(&self.config)
            .arg("--log-stderr");
        self.spawn_helper(cmd, "Listening on")
    }

    fn spawn_helper(&mut self, mut cmd: Command, ready: &'static str) -> &Helper {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let log: SharedLog = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let (tx, rx) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains(ready) {
                        let _ = tx.send(());
                    }
                    if let Ok(mut l) = log.0.lock() {
                        l.push(line);
                    }
                    log.1.notify_all();
                }
            });
        }
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            let _ = child.kill();
            let lines = log.0.lock().map(|l| l.join("\n")).unwrap_or_default();
            panic!("pushmfa-helper did not start:\n{lines}");
        }
        self.helper.insert(Helper { child, log })
    }

    /// Stops the helper (SIGKILL) and waits for it.
    pub fn kill_helper(&mut self) {
        self.helper = None;
    }

    pub fn helper_pid(&self) -> u32 {
        self.helper.as_ref().map_or(0, Helper::pid)
    }

    /// Everything the helper logged so far.
    pub fn helper_log(&self) -> String {
        self.helper
            .as_ref()
            .and_then(|h| h.log.0.lock().ok().map(|l| l.join("\n")))
            .unwrap_or_default()
    }

    /// Waits (bounded) until the helper has logged a line containing `needle`.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.wait_for_log_lines(needle, 1)
    }

    /// Waits (bounded) until the helper has logged `n` lines containing
    /// `needle` (it logs a login just after answering the module).
    pub fn wait_for_log_lines(&self, needle: &str, n: usize) -> String {
        let Some(h) = &self.helper else {
            panic!("no helper running");
        };
        let (lock, cv) = &*h.log;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = cv
            .wait_timeout_while(guard, Duration::from_secs(5), |l| {
                l.iter().filter(|x| x.contains(needle)).count() < n
            })
            .unwrap_or_else(|e| e.into_inner());
        let text = guard.join("\n");
        assert!(
            text.matches(needle).count() >= n,
            "helper never logged {needle:?} {n} times; log:\n{text}"
        );
        text
    }

    pub fn admin(&self, req: AdminRequest) -> Result<AdminReply, client::ClientError> {
        client::call(&self.socket, req, Duration::from_secs(30))
    }

    /// New recovery codes for `user`, as root would create them.
    pub fn generate(&self, user: &str) -> Vec<String> {
        match self.admin(AdminRequest::RecoveryGenerate {
            user: Some(user.into()),
            proof: None,
        }) {
            Ok(AdminReply::RecoveryCodes { codes, .. }) => {
                codes.iter().map(|c| c.to_string()).collect()
            }
            other => panic!("generate: {other:?}"),
        }
    }

    pub fn status(&self, user: &str) -> UserStatus {
        match self.admin(AdminRequest::Status {
            user: Some(user.into()),
        }) {
            Ok(AdminReply::Status(s)) => s,
            other => panic!("status: {other:?}"),
        }
    }

    /// The real `pushmfa` CLI with `args`, on this helper's socket.
    pub fn pushmfa(&self, args: &[&str]) -> Output {
        Command::new(bin("pushmfa"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("pushmfa {args:?}: {e}"))
    }

    /// `pushmfa devices list --user USER`, run by the real CLI.
    pub fn devices_list(&self, user: &str) -> String {
        let out = self.pushmfa(&["devices", "list", "--user", user]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes a PAM service file using the built module with `args`.
    pub fn service(&self, name: &str, args: &str) {
        let line = format!(
            "auth required {} socket={} {args}\n",
            module_path().display(),
            self.socket.display()
        );
        std::fs::write(self.pam_dir.join(name), line)
            .unwrap_or_else(|e| panic!("write service: {e}"));
    }

    /// An in-process login through libpam (`pam_start_confdir`).
    pub fn pam(&self, service: &str, user: &str) -> PamRun {
        PamRun::new(&self.pam_dir, service, user)
    }

    /// A `pamtester` process under pam_wrapper, fed `stdin`.
    pub fn pamtester(&self, service: &str, user: &str, stdin: &str, items: &[&str]) -> Output {
        self.pamtester_cmd(service, user, items, None).run(stdin)
    }

    pub fn pamtester_cmd(
        &self,
        service: &str,
        user: &str,
        items: &[&str],
        as_user: Option<&str>,
    ) -> Pamtester {
        let mut cmd = match as_user {
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={u}"),
                    "--regid=nogroup",
                    "--clear-groups",
                    "pamtester",
                ]);
                c
            }
            None => Command::new("pamtester"),
        };
        // pam_wrapper picks /tmp/pam.<letter> by default, which collides when
        // two processes start at once: give each process its own runtime dir.
        static SPAWNED: AtomicUsize = AtomicUsize::new(0);
        let runtime = self
            .dir
            .path()
            .join(format!("pwrap-{}", SPAWNED.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir(&runtime).unwrap_or_else(|e| panic!("mkdir: {e}"));
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o777))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
        cmd.env("LD_PRELOAD", "libpam_wrapper.so")
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", &self.pam_dir)
            .env("PAM_WRAPPER_RUNTIME_DIR", &runtime)
            .arg("-v");
        for item in items {
            cmd.arg("-I").arg(item);
        }
        cmd.args([service, user, "authenticate"]);
        Pamtester { cmd }
    }
}

pub struct Pamtester {
    pub cmd: Command,
}

impl Pamtester {
    fn spawn_piped(mut self) -> Child {
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("spawn pamtester (apt-get install pamtester libpam-wrapper): {e}")
            })
    }

    /// Spawns and writes all of `stdin` (one answer per line).
    pub fn spawn(self, stdin: &str) -> Child {
        use std::io::Write;
        let mut child = self.spawn_piped();
        if let Some(mut s) = child.stdin.take() {
            let _ = s.write_all(stdin.as_bytes());
        }
        child
    }

    /// Spawns with stdin left open, returning once the process shows `prompt`
    /// on stderr (what it printed so far is returned too).
    pub fn spawn_until_prompt(self, prompt: &str) -> (Child, Vec<u8>) {
        use std::io::Read;
        let mut child = self.spawn_piped();
        let mut seen = Vec::new();
        if let Some(err) = child.stderr.as_mut() {
            let mut byte = [0u8; 1];
            while !seen.ends_with(prompt.as_bytes()) {
                match err.read(&mut byte) {
                    Ok(1) => seen.push(byte[0]),
                    _ => break,
                }
            }
        }
        (child, seen)
    }

    pub fn run(self, stdin: &str) -> Output {
        self.spawn(stdin)
            .wait_with_output()
            .unwrap_or_else(|e| panic!("pamtester: {e}"))
    }
}

/// A TCP connection to `to` from loopback address `from` (127.0.0.0/8 is
/// all ours), so tests can act as many clients.
pub fn connect_from(
    from: std::net::Ipv4Addr,
    to: std::net::SocketAddrV4,
) -> std::io::Result<std::net::TcpStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(std::net::SocketAddrV4::new(from, 0)),
    )?;
    connect(fd.as_raw_fd(), &SockaddrIn::from(to))?;
    Ok(std::net::TcpStream::from(fd))
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether a transcript line is the prompt after push could not be used:
/// offline approval's (which takes a recovery code too) or the recovery
/// code's.
pub fn asks_for_a_code(seen: &str) -> bool {
    seen == "prompt:Recovery code: "
        || (seen.starts_with("prompt:")
            && seen.ends_with("\nCode from your phone (or a recovery code): "))
}

/// The key lines of `table` in `toml`, and `toml` without that table.
fn split_table(toml: &str, table: &str) -> (String, String) {
    let (mut keys, mut rest, mut inside) = (String::new(), String::new(), false);
    for line in toml.lines() {
        if line.trim_start().starts_with('[') {
            inside = line.trim() == table;
            if inside {
                continue;
            }
        }
        let to = if inside { &mut keys } else { &mut rest };
        to.push_str(line);
        to.push('\n');
    }
    (keys, rest)
}
