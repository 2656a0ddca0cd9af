//! pushmfa, the admin and user CLI: every command but `doctor` and
//! `configure` is one admin call to pushmfa-helper over its socket.
//!
//! Modules run one way: `run` (dispatch) -> commands (`account`, `enroll`,
//! `devices`, `policy`, `rollout`, `configure`, `doctor`) -> `proof` -> `calls` -> the wire
//! types in `pushmfa_protocol`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod account;
pub mod args;
mod calls;
pub mod configure;
mod devices;
pub mod doctor;
mod enroll;
mod policy;
mod proof;
mod rollout;

use args::{Cli, Command, PolicyCommand, RecoveryCommand};
use pushmfa_config::Config;
use pushmfa_protocol::ipc::AdminRequest;
use std::process::ExitCode;

/// Runs one parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let cfg = Config::load(&cli.config, 0).unwrap_or_default();
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(|| cfg.helper.socket.clone());
    let app_url = Some(cfg.backend.app_url.clone()).filter(|u| !u.is_empty());
    let result = match cli.command {
        Command::Recovery {
            command: RecoveryCommand::Generate { user, json },
        } => account::generate(&socket, user, json),
        Command::Status { user, json } => account::status(&socket, user, json),
        Command::Unlock { user } => account::unlock(&socket, user),
        Command::Enroll { user } => enroll::enroll(&socket, user, app_url),
        Command::Devices { command } => devices::devices(&socket, command),
        Command::Reset { user } => calls::done(&socket, AdminRequest::Reset { user }),
        Command::Doctor => return doctor::report(&cli.config, cli.socket.as_deref()),
        Command::Report { json } => rollout::report(&socket, json),
        Command::Invite { user, days } => rollout::invite(&socket, user, days),
        Command::Policy {
            command:
                PolicyCommand::Explain {
                    user,
                    service,
                    rhost,
                    json,
                },
        } => policy::explain(&socket, user, service, rhost, json),
        Command::Configure {
            relay_urls,
            no_relay,
            host_name,
        } => {
            let changes = pushmfa_config::edit::Changes {
                relay_urls,
                no_relay,
                host_name,
            };
            return configure::run(&cli.config, &changes);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushmfa: {e}");
            ExitCode::FAILURE
        }
    }
}
