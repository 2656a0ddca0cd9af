//! pushmfa-helper: the privileged daemon that owns every authentication
//! decision on this host.
//!
//! The PAM module connects over a Unix socket; the helper identifies the
//! caller (SO_PEERCRED), runs the login conversation, checks push answers
//! and recovery codes against the per-user state it owns, logs the decision
//! and answers with a verdict. `pushmfa` (the CLI) talks to the same socket
//! for admin calls.
//!
//! Modules depend one way (a test checks it):
//!
//! ```text
//! run (start-up) -> server (accept loop)
//!   -> handlers: login/ (one login: conversation, push step, code prompts),
//!                admin/ (one handler per admin request, enrollment)
//!   -> services: proof, enrollment, push/ (challenge, delivery), user_state, scoping,
//!                push_book, ctx
//!   -> domain:   recovery, offline_codes, invitations, codes, terminal_qr, groups, hashing, hostkey,
//!                relay_client, conn, peer, clock, log
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod admin;
pub mod args;
mod clock;
pub mod codes;
mod conn;
mod ctx;
mod enrollment;
mod groups;
mod hashing;
mod hostkey;
mod invitations;
mod log;
mod login;
mod offline_codes;
mod peer;
mod proof;
mod push;
mod push_book;
mod recovery;
mod relay_client;
mod scoping;
mod server;
mod terminal_qr;
mod tls_pin;
mod user_state;

use args::Args;
use clock::SystemClock;
use ctx::Ctx;
use hostkey::HostKey;
use log::Logger;
use pushmfa_config::{BackendKind, Config, LogLevel};
use pushmfa_state::Store;
use relay_client::{RelayClient, RelayError};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// What `policy.failmode = "safe"` gives away, for the start-up log.
const FAILMODE_SAFE_WARNING: &str = "policy.failmode = \"safe\": while the relay cannot be reached (no connection, or a timeout), logins pass with NO second factor; anyone who can cut this host off from the relay needs only the password";

/// Starts the helper with `args`; returns when it is told to stop.
pub fn run(args: Args) -> ExitCode {
    hashing::keep_large_buffers_unmapped();
    let euid = nix::unistd::geteuid().as_raw();
    let boot_log = Logger::new("pushmfa-helper", true, false);
    let cfg = match Config::load(&args.config, euid) {
        Ok(c) => c,
        Err(e) => {
            boot_log.error(&format!("configuration: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let log = Arc::new(Logger::new(
        "pushmfa-helper",
        args.log_stderr,
        cfg.log.level == LogLevel::Debug,
    ));
    let store = match Store::open(&cfg.helper.state_dir, euid) {
        Ok(s) => s,
        Err(e) => {
            boot_log.error(&format!("state directory: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let host_key = match HostKey::load_or_create(&cfg.helper.state_dir, euid) {
        Ok(k) => Arc::new(k),
        Err(e) => {
            boot_log.error(&format!("host key: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let relay = match cfg.backend.kind {
        BackendKind::None => None,
        BackendKind::Relay => {
            match pushmfa_config::trusted_roots(&cfg.backend.ca_file).and_then(|roots| {
                RelayClient::new(
                    &cfg.backend.url.0,
                    Duration::from_secs(u64::from(cfg.backend.timeout_secs)),
                    roots.as_deref(),
                    &cfg.backend.pins(),
                )
                .map_err(|e: RelayError| e.to_string())
            }) {
                Ok(c) => Some(c),
                Err(e) => {
                    boot_log.error(&format!("backend: {e}"));
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    if args.check {
        println!(
            "{}: configuration and state directory are fine",
            args.config.display()
        );
        return ExitCode::SUCCESS;
    }
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| cfg.helper.socket.clone());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            boot_log.error(&format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match server::listener::listen(&socket) {
            Ok(l) => l,
            Err(e) => {
                boot_log.error(&format!("cannot listen on {}: {e}", socket.display()));
                return ExitCode::FAILURE;
            }
        };
        if cfg.policy.failmode_anywhere_safe() {
            log.warning(FAILMODE_SAFE_WARNING);
        }
        let r = &cfg.recovery;
        if r.argon2_memory_kib < 19456 || r.argon2_iterations < 2 {
            log.warning("recovery.argon2_* is below the default cost: stored codes are weaker against offline guessing");
        }
        log.info(&format!(
            "listening on {} (state {}, uid {euid})",
            listener
                .created
                .as_deref()
                .map_or("the systemd socket".into(), |p| p.display().to_string()),
            cfg.helper.state_dir.display()
        ));
        let ctx = Arc::new(Ctx::new(cfg, store, log.clone(), Arc::new(SystemClock), host_key, relay));
        server::serve(&listener.listener, ctx, shutdown_signal()).await;
        log.info("stopping");
        ExitCode::SUCCESS
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => std::future::pending().await,
    }
}
