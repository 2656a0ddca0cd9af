//! pushmfa-authenticator: a software authenticator (the phone, on a desktop).

use clap::Parser;
use pushmfa_authenticator::offline::OfflineRequest;
use pushmfa_authenticator::{AuthError, Store, answer, enroll_protocol, pending, select};
use pushmfa_protocol::signed::Decision;
use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use pushmfa_authenticator::args::*;

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
        Command::Enroll {
            uri,
            name,
            protocol,
        } => {
            let a = enroll_protocol(&store, uri, name, *protocol).await?;
            println!(
                "enrolled {} on {} ({}) via {}, protocol {}",
                a.account,
                a.host_name,
                a.issuer,
                a.relay,
                a.protocol()
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
        Command::Offline { request, yes } => offline(&store, request.as_deref(), *yes),
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

/// `offline`: check the request, show it, ask, print the code.
fn offline(store: &Store, request: Option<&str>, yes: bool) -> Result<(), AuthError> {
    let mut stdin = std::io::stdin().lock();
    let text = match request {
        Some(t) => t.to_owned(),
        None => {
            eprintln!("Paste the request from the login prompt, then an empty line:");
            read_until_empty_line(&mut stdin)?
        }
    };
    let req = OfflineRequest::parse(store, &text)?;
    println!("{}", req.describe());
    if !yes {
        eprint!("Approve? Only if you started this sign-in yourself [y/N]: ");
        let mut line = String::new();
        stdin
            .read_line(&mut line)
            .map_err(|e| AuthError::Usage(format!("standard input: {e}")))?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            println!("Not approved: no code shown.");
            return Ok(());
        }
    }
    println!("Code: {}", req.approval_code()?);
    Ok(())
}

fn read_until_empty_line(input: &mut impl BufRead) -> Result<String, AuthError> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let n = input
            .read_line(&mut line)
            .map_err(|e| AuthError::Usage(format!("standard input: {e}")))?;
        if n == 0 || (line.trim().is_empty() && !text.is_empty()) {
            return Ok(text);
        }
        text.push_str(&line);
        if text.len() > 16 * 1024 {
            return Err(AuthError::Usage("that is too long for a request".into()));
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
