//! `Ctx`: the process-wide services every handler shares, built once at
//! start-up and passed down as `&Ctx`. Per-connection values stay in the
//! connection's task.

use crate::clock::Clock;
use crate::hashing::Hashers;
use crate::hostkey::{self, HostKey};
use crate::log::Logger;
use crate::push_book::PushBook;
use crate::relay_client::RelayClient;
use pushmfa_config::Config;
use pushmfa_state::Store;
use std::sync::Arc;

/// Everything a connection handler needs.
pub struct Ctx {
    pub cfg: Config,
    pub store: Store,
    pub log: Arc<Logger>,
    pub clock: Arc<dyn Clock>,
    /// Bounds concurrent Argon2id computations (each uses its memory cost).
    pub hashers: Hashers,
    pub helper_uid: u32,
    /// Signs challenges; devices learn its public key at enrollment.
    pub host_key: Arc<HostKey>,
    /// The push backend, when `backend.kind = "relay"`.
    pub relay: Option<RelayClient>,
    /// Per-user push bookkeeping (outstanding push, rate limit).
    pub push: PushBook,
}

impl Ctx {
    pub fn new(
        cfg: Config,
        store: Store,
        log: Arc<Logger>,
        clock: Arc<dyn Clock>,
        host_key: Arc<HostKey>,
        relay: Option<RelayClient>,
    ) -> Ctx {
        let hashes = match cfg.recovery.max_parallel_hashes {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n as usize,
        };
        Ctx {
            cfg,
            store,
            log,
            clock,
            hashers: Hashers::new(hashes),
            helper_uid: nix::unistd::geteuid().as_raw(),
            host_key,
            relay,
            push: PushBook::default(),
        }
    }

    /// The host name devices are shown: `push.host_name`, else the system's.
    pub fn host_name(&self) -> String {
        hostkey::host_name(&self.cfg.push.host_name)
    }
}
