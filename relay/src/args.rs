//! Command-line arguments (here so that man pages can be generated from them).

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The pushmfa push relay: carries login challenges from hosts to enrolled
/// devices and their signed answers back, with long-polling on both sides.
///
/// It is untrusted by design: every challenge is signed by the host and every
/// answer by the device, and hosts verify answers themselves, so a relay can
/// delay or drop a login but never approve one. Device channels persist in
/// --data; pending challenges and enrollment slots live in memory and expire.
/// Serve it behind a TLS-terminating proxy when it is reachable from phones.
#[derive(Parser)]
#[command(version)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8480")]
    pub listen: SocketAddr,
    /// Directory for device channels (created if missing). Without it,
    /// channels are lost on restart and devices must enroll again.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Requests per second allowed per token (sustained).
    #[arg(long, default_value_t = 20.0)]
    pub rate_per_sec: f64,
    /// Requests a token may burst above that rate.
    #[arg(long, default_value_t = 100.0)]
    pub burst: f64,
}
