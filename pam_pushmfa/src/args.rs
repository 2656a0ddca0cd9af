//! Module arguments from the PAM stack line. Unknown arguments are an error
//! (PAM_SERVICE_ERR), so a typo like `sokcet=` is loud rather than ignored.

use std::ffi::CStr;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_SOCKET: &str = "/run/pushmfa/helper.sock";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// No wait the helper announces can stretch a read past this (NIST SP
/// 800-63B: an out-of-band authentication is invalid after 10 minutes).
pub const MAX_WAIT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleArgs {
    /// The helper's socket.
    pub socket: PathBuf,
    /// Log each result, including successes, to syslog.
    pub debug: bool,
    /// How long to wait for each helper message beyond what the helper
    /// announced it needs.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl std::error::Error for ArgError {}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ModuleArgs {
    pub fn parse(args: &[&CStr]) -> Result<ModuleArgs, ArgError> {
        let mut out = ModuleArgs {
            socket: PathBuf::from(DEFAULT_SOCKET),
            debug: false,
            timeout: DEFAULT_TIMEOUT,
        };
        for raw in args {
            let arg = raw
                .to_str()
                .map_err(|_| ArgError("module argument is not valid UTF-8".into()))?;
            match arg.split_once('=') {
                None if arg == "debug" => out.debug = true,
                Some(("socket", p)) if p.starts_with('/') => out.socket = PathBuf::from(p),
                Some(("socket", p)) => {
                    return Err(ArgError(format!("socket={p}: must be an absolute path")));
                }
                Some(("timeout", v)) => {
                    let secs: u64 = v
                        .parse()
                        .ok()
                        .filter(|s| (1..=600).contains(s))
                        .ok_or_else(|| ArgError(format!("timeout={v}: expected 1-600 seconds")))?;
                    out.timeout = Duration::from_secs(secs);
                }
                _ => {
                    return Err(ArgError(format!(
                        "unknown module argument `{arg}` (known: socket=PATH, timeout=SECS, debug)"
                    )));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn parse(args: &[&str]) -> Result<ModuleArgs, ArgError> {
        let owned: Vec<std::ffi::CString> = args
            .iter()
            .filter_map(|a| std::ffi::CString::new(*a).ok())
            .collect();
        let refs: Vec<&CStr> = owned.iter().map(|c| c.as_c_str()).collect();
        ModuleArgs::parse(&refs)
    }

    #[test]
    fn defaults_and_known_arguments() -> TestResult {
        let d = parse(&[])?;
        assert_eq!(d.socket, PathBuf::from(DEFAULT_SOCKET));
        assert!(!d.debug);
        let a = parse(&["debug", "socket=/tmp/x.sock", "timeout=3"])?;
        assert_eq!(a.socket, PathBuf::from("/tmp/x.sock"));
        assert!(a.debug);
        assert_eq!(a.timeout, Duration::from_secs(3));
        Ok(())
    }

    #[test]
    fn unknown_and_bad_arguments_are_named() {
        let err = |a: &str| parse(&[a]).err().map(|e| e.0).unwrap_or_default();
        assert!(err("sokcet=/x").contains("`sokcet=/x`"));
        assert!(err("nullok").contains("`nullok`"));
        assert!(err("socket=rel").contains("absolute"));
        assert!(parse(&["timeout=0"]).is_err());
        assert!(parse(&["timeout=abc"]).is_err());
        assert!(parse(&["debug=1"]).is_err());
    }
}
