//! The phone web app in a real browser: `webapp/tests/phone.mjs` runs
//! Debian's Chromium through playwright-core and takes one JSON command per
//! line, so a scenario can enroll from the link `pushmfa enroll` prints and
//! answer real PAM logins on the page, as a user would.

use crate::TestEnv;
use crate::push::EnrollRun;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// Debian's Chromium (`PUSHMFA_CHROMIUM` overrides).
fn chromium() -> PathBuf {
    std::env::var_os("PUSHMFA_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

fn webapp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../webapp")
}

/// One browser at a time per test process: several Chromiums on two cores
/// starve each other into timeouts. Held by a `BrowserPhone` until dropped.
struct Turn;

static BUSY: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
static FREED: std::sync::Condvar = std::sync::Condvar::new();

impl Turn {
    fn take() -> Turn {
        let mut busy = BUSY.lock().unwrap_or_else(|e| e.into_inner());
        while *busy {
            busy = FREED.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy = true;
        Turn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *BUSY.lock().unwrap_or_else(|e| e.into_inner()) = false;
        FREED.notify_one();
    }
}

/// A browser with the app open, killed on drop.
pub struct BrowserPhone {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    _turn: Turn,
}

impl BrowserPhone {
    /// Starts Chromium (a 360 px wide phone screen unless `args` say else).
    pub fn start(args: &[&str]) -> BrowserPhone {
        let turn = Turn::take();
        assert!(
            chromium().exists(),
            "{} is missing: apt-get install chromium (scripts/install-deps.sh does)",
            chromium().display()
        );
        assert!(
            webapp_dir().join("node_modules/playwright-core").exists(),
            "playwright-core is missing: (cd webapp && npm ci) (scripts/install-deps.sh does)"
        );
        let mut child = Command::new("node")
            .arg(webapp_dir().join("tests/phone.mjs"))
            .args(args)
            .env("PUSHMFA_CHROMIUM", chromium())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn node (apt-get install nodejs): {e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
        let stdout = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("no stdout")));
        BrowserPhone {
            child,
            stdin,
            stdout,
            _turn: turn,
        }
    }

    /// Sends one command; its answer, or what went wrong.
    pub fn try_call(&mut self, cmd: Value) -> Result<Value, String> {
        writeln!(self.stdin, "{cmd}").map_err(|e| format!("browser: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("browser: {e}"))?;
        let v: Value =
            serde_json::from_str(&line).map_err(|e| format!("browser said {line:?}: {e}"))?;
        if v["ok"] == json!(true) {
            Ok(v)
        } else {
            Err(v["error"].as_str().unwrap_or("no answer").to_owned())
        }
    }

    /// [`BrowserPhone::try_call`] that must succeed.
    pub fn call(&mut self, cmd: Value) -> Value {
        let what = cmd["cmd"].clone();
        self.try_call(cmd)
            .unwrap_or_else(|e| panic!("browser {what}: {e}"))
    }

    /// Runs `pushmfa enroll --user USER`, opens the link it prints in the
    /// browser and adds the account as `name`. Returns the CLI's output and
    /// the browser's answer to the enrollment (with the `link` it opened).
    pub fn enroll(
        &mut self,
        env: &TestEnv,
        relay: &str,
        user: &str,
        name: &str,
    ) -> (String, Value) {
        self.enroll_at(env, &format!("{relay}/app/"), user, name)
    }

    /// [`BrowserPhone::enroll`] with the web app served at `app` (app_url).
    pub fn enroll_at(
        &mut self,
        env: &TestEnv,
        app: &str,
        user: &str,
        name: &str,
    ) -> (String, Value) {
        let mut cli = EnrollRun::start(env, user);
        let link = cli.line_starting(&format!("{app}#enroll?"));
        self.call(json!({"cmd": "open", "url": link}));
        let mut added = self.call(json!({"cmd": "enroll", "name": name}));
        added["link"] = json!(link);
        (cli.finish(&added.to_string()), added)
    }

    /// Saves a screenshot of the whole page.
    pub fn screenshot(&mut self, path: &Path) {
        self.call(json!({"cmd": "screenshot", "path": path}));
    }
}

impl Drop for BrowserPhone {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
