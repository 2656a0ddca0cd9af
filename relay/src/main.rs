//! pushmfa-relay: the reference self-hosted push relay.

use clap::Parser;
use pushmfa_config::relay::AddrBlock;
use pushmfa_relay::serve::{ConnLimits, Gate};
use pushmfa_relay::tls::Certificates;
use pushmfa_relay::{Relay, RelayConfig};
use std::process::ExitCode;
use std::sync::Arc;

use pushmfa_relay::args::*;

fn main() -> ExitCode {
    let args = match Args::parse().settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pushmfa-relay: {e}");
            return ExitCode::FAILURE;
        }
    };
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
        let relay = match Relay::connect(RelayConfig {
            data_dir: (!args.data.as_os_str().is_empty()).then(|| args.data.clone()),
            store: args.store.clone(),
            store_password_file: (!args.store_password_file.as_os_str().is_empty())
                .then(|| args.store_password_file.clone()),
            rate_per_sec: args.rate_per_sec,
            burst: args.burst,
            web_push_contact: args.web_push_contact.clone(),
            web_push_allow: args.web_push_allow.clone(),
            app_origin: Some(args.app_origin.clone()).filter(|o| !o.is_empty()),
            trusted_proxies: args
                .trusted_proxies
                .iter()
                .filter_map(|p| AddrBlock::parse(p))
                .collect(),
            limits: args.limits.clone(),
            ..RelayConfig::default()
        })
        .await
        {
            Ok(r) => Arc::new(r),
            Err(e) => {
                eprintln!("pushmfa-relay: {e}");
                return ExitCode::FAILURE;
            }
        };
        // Connections are capped below the open-file limit, so a flood of
        // idle connections cannot starve the relay of descriptors.
        let tls = if args.tls_cert.as_os_str().is_empty() {
            None
        } else {
            match Certificates::load(&args.tls_cert, &args.tls_key)
                .and_then(|c| c.acceptor().map(|a| (c, a)))
            {
                Ok((certs, acceptor)) => {
                    tokio::spawn(pushmfa_relay::tls::reload_forever(
                        certs,
                        std::time::Duration::from_secs(10),
                    ));
                    Some(acceptor)
                }
                Err(e) => {
                    eprintln!("pushmfa-relay: TLS: {e}");
                    return ExitCode::FAILURE;
                }
            }
        };
        let open_files = pushmfa_relay::serve::raise_open_files();
        let limits = ConnLimits::new(&args.limits, open_files);
        let bounds = format!(
            "pushmfa-relay: up to {} connections ({} before a token is shown, {} per address; open-file limit {open_files})\n",
            limits.max, limits.max_anonymous, limits.per_address
        );
        let gate = Gate::new(limits);
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
        // One write: whoever waits for this line reads it whole.
        let scheme = if tls.is_some() { "https" } else { "http" };
        let line = format!("pushmfa-relay: listening on {scheme}://{addr}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        let _ = std::io::Write::write_all(&mut std::io::stderr(), bounds.as_bytes());
        pushmfa_relay::store::redis::start_logging();
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
            () = pushmfa_relay::serve::serve(listener, pushmfa_relay::router(relay), gate, tls) => ExitCode::SUCCESS,
            _ = shutdown => ExitCode::SUCCESS,
        }
    })
}
