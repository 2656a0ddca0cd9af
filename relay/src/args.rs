//! Command-line arguments (here so that man pages can be generated from them).

use clap::Parser;
use pushmfa_config::relay::RelayFile;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The pushmfa push relay: carries login challenges from hosts to enrolled
/// devices and their signed answers back, with long-polling on both sides.
///
/// It is untrusted by design: every challenge is signed by the host and every
/// answer by the device, and hosts verify answers themselves, so a relay can
/// delay or drop a login but never approve one. With the embedded store,
/// device channels persist in --data and pending challenges and enrollment
/// slots live in memory and expire. With --store redis://..., several relays
/// share one state in Redis and act as one behind a load balancer.
/// Serve it with TLS (--tls-cert) or behind a TLS-terminating proxy when it
/// is reachable from phones.
///
/// Settings come from the command line, then --config, then the defaults.
#[derive(Parser)]
#[command(version)]
pub struct Args {
    /// Configuration file (the package's unit uses /etc/pushmfa-relay/relay.toml).
    /// Without it, only the command line and the defaults count.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8480].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Directory for device channels (created if missing). Without it,
    /// channels are lost on restart and devices must enroll again.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where state lives: "memory" (this process; channels in --data), or
    /// Redis shared by several relays: redis://[:password@]host:port/db, or
    /// redis+sentinel://[:password@]host:port,host:port/service for a primary
    /// that Sentinel fails over [default: memory].
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Requests per second allowed per token (sustained) [default: 20].
    #[arg(long)]
    pub rate_per_sec: Option<f64>,
    /// Requests a token may burst above that rate [default: 100].
    #[arg(long)]
    pub burst: Option<f64>,
    /// VAPID contact sent to push services, a mailto: or https: URL
    /// [default: mailto:root@localhost].
    #[arg(long, value_name = "URL")]
    pub web_push_contact: Option<String>,
    /// Also send Web Push messages to this origin (repeatable; replaces the
    /// file's list). Browsers' own push services are always allowed.
    #[arg(long, value_name = "ORIGIN")]
    pub web_push_allow: Vec<String>,
    /// PEM certificate chain for TLS on the relay's own port (with --tls-key).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Serve no web app; let the app at this origin use the API instead.
    #[arg(long, value_name = "ORIGIN")]
    pub app_origin: Option<String>,
}

impl Args {
    /// The settings in effect: each command-line option over the file's value.
    pub fn settings(&self) -> Result<RelayFile, String> {
        let mut s = match &self.config {
            Some(path) => RelayFile::load(path).map_err(|e| e.to_string())?,
            None => RelayFile::default(),
        };
        if let Some(v) = self.listen {
            s.listen = v;
        }
        if let Some(v) = &self.data {
            s.data = v.clone();
        }
        if let Some(v) = &self.store {
            s.store = v.clone();
        }
        if let Some(v) = self.rate_per_sec {
            s.rate_per_sec = v;
        }
        if let Some(v) = self.burst {
            s.burst = v;
        }
        if let Some(v) = &self.web_push_contact {
            s.web_push_contact = v.clone();
        }
        if let Some(v) = &self.app_origin {
            s.app_origin = v.clone();
        }
        if let Some(v) = &self.tls_cert {
            s.tls_cert = v.clone();
        }
        if let Some(v) = &self.tls_key {
            s.tls_key = v.clone();
        }
        if !self.web_push_allow.is_empty() {
            s.web_push_allow = self.web_push_allow.clone();
        }
        s.check()?;
        Ok(s)
    }
}
