//! pushmfa-relay as a library: the HTTP API (`routes`) over the relay's
//! state (`api`, `store`), and the accept loop (`serve`) that `main` runs.
//!
//! Everything here is untrusted by the hosts: records are opaque strings,
//! tokens are stored only as SHA-256 hashes, and nothing the relay does can
//! produce a valid host or device signature.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod api;
pub mod args;
mod channels;
mod clients;
mod enrollments;
mod errors;
mod routes;
pub mod serve;
pub mod store;
pub mod tls;
mod tokens;
pub mod wakeups;
pub mod webapp;
pub mod webpush;

pub use api::{Relay, RelayConfig, RelayError, sweep_forever};
pub use errors::ApiError;
pub use routes::router;
