//! Command-line arguments (here so that man pages can be generated from them).

use clap::{Args as ClapArgs, Parser, Subcommand};
use std::path::PathBuf;

/// A software authenticator for pushmfa.
///
/// Enroll it with the URI `pushmfa enroll` shows, then approve or deny
/// login requests. Each request is checked against the host key learned at
/// enrollment; approving needs the number shown at the login prompt.
#[derive(Parser)]
#[command(version)]
pub struct Cli {
    /// Where keys and accounts are kept (created 0700; the key file is 0600).
    #[arg(long, env = "PUSHMFA_AUTHENTICATOR_STORE")]
    pub store: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Enroll with a `pushmfa://enroll?...` URI (from the QR code's text).
    Enroll {
        uri: String,
        /// A name for this device, shown by `pushmfa devices list`.
        #[arg(long, default_value = "software authenticator")]
        name: String,
        /// 2: requests and answers travel sealed, the relay cannot read
        /// them. 1: for a host or relay older than protocol 2.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
        protocol: u8,
    },
    /// List pending login requests.
    Pending {
        /// Wait up to this many seconds for one to arrive.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Approve a login request.
    Approve {
        #[command(flatten)]
        target: Target,
        /// The number shown at the login prompt.
        #[arg(long)]
        number: u8,
    },
    /// Deny a login request.
    Deny {
        #[command(flatten)]
        target: Target,
    },
    /// Report a login request you did not start (pushes to you are muted).
    Fraud {
        #[command(flatten)]
        target: Target,
    },
    /// Approve a sign-in with no network: check a request copied from the
    /// login prompt (PUSHMFA-OFFLINE:...) and print the 8-digit code to
    /// type there.
    ///
    /// The request is the argument, or read from standard input up to an
    /// empty line (a paste across wrapped lines is fine). It must be signed
    /// by a computer this authenticator is enrolled with. Then it asks
    /// before it shows the code, unless --yes.
    Offline {
        /// The request text; read from standard input when absent.
        request: Option<String>,
        /// Approve without asking (scripts, tests).
        #[arg(long)]
        yes: bool,
    },
    /// Answer every request that arrives, until interrupted (demos, tests).
    ///
    /// A real phone asks the user for the number each time; a watcher that
    /// approves needs it up front (--number), so it suits demos and tests.
    Watch {
        /// Approve each request (with --number).
        #[arg(long, conflicts_with = "deny", requires = "number")]
        approve: bool,
        /// The number to answer with when approving.
        #[arg(long)]
        number: Option<u8>,
        /// Deny each request.
        #[arg(long)]
        deny: bool,
        /// Stop after answering this many requests.
        #[arg(long)]
        count: Option<usize>,
    },
}

#[derive(ClapArgs)]
pub struct Target {
    /// The request's id (a prefix is enough); default: the only pending one.
    pub id: Option<String>,
    /// Wait up to this many seconds for the request to arrive.
    #[arg(long, default_value_t = 10)]
    pub wait: u64,
}
