//! pushmfa-authenticator: a software authenticator (the phone, on a desktop).

use clap::{Args as ClapArgs, Parser, Subcommand};
use pushmfa_authenticator::{AuthError, Store, answer, enroll, pending, select};
use pushmfa_protocol::signed::Decision;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// A software authenticator for pushmfa.
///
/// Enroll it with the URI `pushmfa enroll` shows, then approve or deny
/// login requests. Each request is checked against the host key learned at
/// enrollment; approving needs the number shown at the login prompt.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Where keys and accounts are kept (created 0700; the key file is 0600).
    #[arg(long, env = "PUSHMFA_AUTHENTICATOR_STORE")]
    store: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll with a `pushmfa://enroll?...` URI (from the QR code's text).
    Enroll {
        uri: String,
        /// A name for this device, shown by `pushmfa devices list`.
        #[arg(long, default_value = "software authenticator")]
        name: String,
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
struct Target {
    /// The request's id (a prefix is enough); default: the only pending one.
    id: Option<String>,
    /// Wait up to this many seconds for the request to arrive.
    #[arg(long, default_value_t = 10)]
    wait: u64,
}

async fn run(cli: Cli) -> Result<(), AuthError> {
    let store = Store::open(&cli.store)?;
    let one = |t: &Target, decision: Decision, number: Option<u8>| {
        let store = &store;
        let id = t.id.clone();
        let wait = Duration::from_secs(t.wait);
        async move {
            let (reqs, bad) = pending(store, wait).await?;
            for b in bad {
                eprintln!("warning: {b}");
            }
            let req = select(&reqs, id.as_deref())?;
            answer(req, decision, number).await?;
            println!("{:?}: {}", decision, req.describe());
            Ok::<(), AuthError>(())
        }
    };
    match &cli.command {
        Command::Enroll { uri, name } => {
            let a = enroll(&store, uri, name).await?;
            println!(
                "enrolled {} on {} ({}) via {}",
                a.account, a.host_name, a.issuer, a.relay
            );
            Ok(())
        }
        Command::Pending { wait } => {
            let (reqs, bad) = pending(&store, Duration::from_secs(*wait)).await?;
            for b in bad {
                eprintln!("warning: {b}");
            }
            if reqs.is_empty() {
                println!("no pending login requests");
            }
            for r in &reqs {
                println!("{}  {}", &r.id[..8.min(r.id.len())], r.describe());
            }
            Ok(())
        }
        Command::Approve { target, number } => one(target, Decision::Approve, Some(*number)).await,
        Command::Deny { target } => one(target, Decision::Deny, None).await,
        Command::Fraud { target } => one(target, Decision::Fraud, None).await,
        Command::Watch {
            approve,
            number,
            deny,
            count,
        } => {
            let decision = match (approve, deny) {
                (true, false) => Decision::Approve,
                (false, true) => Decision::Deny,
                _ => {
                    return Err(AuthError::Usage(
                        "watch needs --approve --number N, or --deny".into(),
                    ));
                }
            };
            let mut answered = 0;
            loop {
                let (reqs, bad) = pending(&store, Duration::from_secs(30)).await?;
                for b in bad {
                    eprintln!("warning: {b}");
                }
                for r in &reqs {
                    answer(r, decision, *number).await?;
                    println!("{:?}: {}", decision, r.describe());
                    answered += 1;
                    if count.is_some_and(|c| answered >= c) {
                        return Ok(());
                    }
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pushmfa-authenticator: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushmfa-authenticator: {e}");
            ExitCode::FAILURE
        }
    }
}
