//! pushmfa-helper's command line (public, so that man pages and the
//! packaging tests can read it).

use clap::Parser;
use std::path::PathBuf;

/// The pushmfa helper: decides every second-factor login on this host.
///
/// The PAM module pam_pushmfa.so and the `pushmfa` CLI connect to its Unix
/// socket. It runs in the foreground; under systemd it uses the socket
/// passed by socket activation (LISTEN_FDS), otherwise it binds the
/// configured path. Decisions are logged to syslog (authpriv).
#[derive(Parser)]
#[command(version)]
pub struct Args {
    /// Configuration file.
    #[arg(long, default_value = pushmfa_config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Listen on this socket instead of helper.socket from the configuration.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Also write log lines to stderr.
    #[arg(long)]
    pub log_stderr: bool,
    /// Check the configuration and the state directory, then exit.
    #[arg(long)]
    pub check: bool,
}
