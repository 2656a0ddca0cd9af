//! The pushmfa helper: owns every authentication decision.
//!
//! The PAM module connects over a Unix socket; the helper identifies the
//! caller (SO_PEERCRED), runs the login conversation, checks recovery codes
//! against the per-user state it owns, logs the decision and answers with a
//! verdict. `pushmfa` (the CLI) talks to the same socket for admin calls.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin;
pub mod auth;
pub mod clock;
pub mod codes;
pub mod conn;
pub mod enroll;
pub mod hashing;
pub mod helper_args;
pub mod hostkey;
pub mod log;
pub mod peer;
pub mod push;
pub mod push_login;
pub mod recovery;
pub mod relay_client;
pub mod server;
