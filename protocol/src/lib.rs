//! Wire formats that two sides of pushmfa must agree on.
//!
//! `ipc` is the module/CLI <-> helper protocol over the helper's Unix socket:
//! length-prefixed JSON frames with a hard size cap and a typed request/response
//! state machine (`Begin` -> steps -> `Verdict`); `admin_client` is the
//! blocking client side of its admin calls.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin_client;
pub mod enroll;
pub mod envelope;
pub mod frame;
pub mod ipc;
pub mod offline;
pub mod passkey;
pub mod relay_api;
#[cfg(feature = "sealed")]
pub mod sealed;
pub mod signed;
#[cfg(test)]
mod test_vectors;
pub mod text;

pub use frame::{FrameError, MAX_FRAME_LEN, PROTOCOL_VERSION};
