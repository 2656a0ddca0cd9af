//! pushmfa-relay: the reference self-hosted push relay.

use clap::Parser;
use pushmfa_relay::{Relay, RelayConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

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
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8480")]
    listen: SocketAddr,
    /// Directory for device channels (created if missing). Without it,
    /// channels are lost on restart and devices must enroll again.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Requests per second allowed per token (sustained).
    #[arg(long, default_value_t = 20.0)]
    rate_per_sec: f64,
    /// Requests a token may burst above that rate.
    #[arg(long, default_value_t = 100.0)]
    burst: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pushmfa-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let relay = match Relay::open(RelayConfig {
            data_dir: args.data.clone(),
            rate_per_sec: args.rate_per_sec,
            burst: args.burst,
            ..RelayConfig::default()
        }) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                eprintln!("pushmfa-relay: {e}");
                return ExitCode::FAILURE;
            }
        };
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("pushmfa-relay: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener
            .local_addr()
            .map_or(args.listen.to_string(), |a| a.to_string());
        eprintln!("pushmfa-relay: listening on http://{addr}");
        tokio::spawn(pushmfa_relay::sweep_forever(relay.clone()));
        let shutdown = async {
            use tokio::signal::unix::{SignalKind, signal};
            if let (Ok(mut t), Ok(mut i)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
            } else {
                std::future::pending::<()>().await
            }
        };
        // On SIGTERM/SIGINT stop at once: open long-polls are cut and their
        // clients poll again, instead of shutdown waiting up to a minute.
        tokio::select! {
            served = axum::serve(listener, pushmfa_relay::router(relay)) => match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("pushmfa-relay: {e}");
                    ExitCode::FAILURE
                }
            },
            _ = shutdown => ExitCode::SUCCESS,
        }
    })
}
