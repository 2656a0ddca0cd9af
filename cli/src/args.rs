//! Command-line arguments (here so that man pages can be generated from them).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Manage pushmfa second factors: enroll devices, recovery codes, status, health checks.
///
/// Every command talks to pushmfa-helper over its socket. Root can act on
/// any user with --user; other users act on themselves.
#[derive(Parser)]
#[command(version)]
pub struct Cli {
    /// The helper's socket (default: helper.socket from the configuration).
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// Configuration file, to find the socket and for `doctor`.
    #[arg(long, global = true, default_value = pushmfa_config::DEFAULT_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// One-time recovery codes, typed at the login prompt when the phone is not at hand.
    Recovery {
        #[command(subcommand)]
        command: RecoveryCommand,
    },
    /// Show enrollment: devices, recovery codes left, failures and lockout.
    Status {
        /// The user (root only; default: yourself).
        #[arg(long)]
        user: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Clear a user's recovery-code failure counter and lockout (root only).
    Unlock {
        /// The user to unlock.
        #[arg(long)]
        user: String,
    },
    /// Enroll a phone or software authenticator: shows a QR code to scan.
    ///
    /// Waits for the device to register (with a countdown), checks that the
    /// key really came from the device that scanned the code, and shows new
    /// recovery codes if the user had none. If you are already enrolled you
    /// confirm first with one of your recovery codes or an approval on a
    /// device you already have (root is not asked).
    Enroll {
        /// The user (root only; default: yourself).
        #[arg(long)]
        user: Option<String>,
    },
    /// List, remove or rename enrolled devices.
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
    },
    /// Remove all of a user's devices and recovery codes (root only).
    Reset {
        /// The user to reset.
        #[arg(long)]
        user: String,
    },
    /// Check configuration, permissions, socket and state, and say what to fix.
    Doctor,
    /// A one-time invitation for a user to enroll a phone at their next
    /// login (root only; with policy.unenrolled = "enroll" and
    /// policy.enroll_invitation = true).
    ///
    /// Prints the code once: hand it to the user, who types it at the login
    /// before the enrollment QR code appears. A new invitation replaces the
    /// old one.
    Invite {
        /// The user to invite.
        #[arg(long)]
        user: String,
        /// How many days it works (1-90).
        #[arg(long, default_value_t = 7)]
        days: u32,
    },
    /// Before a rollout: the users in scope, their devices and codes, their
    /// last login, and who would be refused if the module were on now
    /// (root only).
    ///
    /// Users are every account NSS lists with a uid of 1000 or more, the
    /// members of policy.require_groups, and everyone enrolled. Scope is
    /// read without a remote address (exempt_networks does not apply).
    Report {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Who needs the second factor ([policy] in pushmfa.toml).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Point this host at a push relay (or back to recovery codes only).
    ///
    /// Edits the configuration file (--config) in place, keeping its
    /// comments, and refuses any change that would not load. It then checks
    /// that the relay answers and, when systemd runs the helper, restarts it
    /// so the change takes effect. Run it as root.
    #[command(group(
        clap::ArgGroup::new("change")
            .required(true)
            .multiple(true)
            .args(["relay_urls", "no_relay", "host_name"])
    ))]
    Configure {
        /// The relay's URL, for example https://relay.example.org. Repeat it
        /// for several instances of one relay (sharing a store): the helper
        /// tries them in order when one cannot be reached.
        #[arg(long = "relay-url", value_name = "URL", conflicts_with = "no_relay")]
        relay_urls: Vec<String>,
        /// No push backend: recovery codes only.
        #[arg(long)]
        no_relay: bool,
        /// The host name shown on the phone (default: this machine's host name).
        #[arg(long, value_name = "NAME")]
        host_name: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Show which [policy] rule applies to a login and why (root only).
    ///
    /// The helper evaluates the rules exactly as for a real login, groups
    /// from NSS included, and prints the rule that decided, the groups it
    /// saw and the settings that then apply to the service. Nothing is
    /// logged in or changed.
    Explain {
        /// The user who would log in.
        #[arg(long)]
        user: String,
        /// The PAM service (sshd, sudo, login, ...).
        #[arg(long)]
        service: String,
        /// The remote address (PAM_RHOST), as sshd would report it.
        #[arg(long)]
        rhost: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum DevicesCommand {
    /// List devices.
    List {
        /// The user (root only; default: yourself).
        #[arg(long)]
        user: Option<String>,
    },
    /// Remove a device, by name or id. Unless root runs it, you confirm
    /// with one of your recovery codes or an approval on your phone.
    Remove {
        /// The device's name or id (see `pushmfa devices list`).
        device: String,
        /// The user (root only; default: yourself).
        #[arg(long)]
        user: Option<String>,
    },
    /// Rename a device.
    Rename {
        /// The device's name or id.
        device: String,
        /// Its new name (1 to 64 characters).
        name: String,
        /// The user (root only; default: yourself).
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum RecoveryCommand {
    /// Generate new recovery codes, replacing all old ones, and print them once.
    ///
    /// The codes go to standard output, one per line; instructions go to
    /// standard error. If you are already enrolled you confirm first with one
    /// of your current codes or an approval on your phone (root is not asked).
    Generate {
        /// The user (root only; default: yourself).
        #[arg(long)]
        user: Option<String>,
        /// Print JSON: {"user": ..., "codes": [...]}.
        #[arg(long)]
        json: bool,
    },
}
