//! pushmfa: manage pushmfa second factors (talks to pushmfa-helper).

use clap::Parser;
use pushmfa_config::Config;
use pushmfa_helper::doctor::Status;
use pushmfa_protocol::admin_client::{self as client, ClientError};
use pushmfa_protocol::ipc::{AdminReply, AdminRequest, Proof, UserStatus};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use zeroize::Zeroizing;

const TIMEOUT: Duration = Duration::from_secs(60);

use pushmfa_helper::cli_args::*;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli.socket.clone().unwrap_or_else(|| {
        Config::load(&cli.config, 0)
            .map(|c| c.helper.socket)
            .unwrap_or_else(|_| Config::default().helper.socket)
    });
    let result = match cli.command {
        Command::Recovery {
            command: RecoveryCommand::Generate { user, json },
        } => generate(&socket, user, json),
        Command::Status { user, json } => status(&socket, user, json),
        Command::Unlock { user } => unlock(&socket, user),
        Command::Enroll { user } => enroll(&socket, user),
        Command::Devices { command } => devices(&socket, command),
        Command::Reset { user } => done(&socket, AdminRequest::Reset { user }),
        Command::Doctor => return doctor(&cli.config, cli.socket.as_deref()),
        Command::Configure {
            relay_url,
            no_relay,
            host_name,
        } => {
            let changes = pushmfa_config::edit::Changes {
                relay_url,
                no_relay,
                host_name,
            };
            return configure(&cli.config, &changes);
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

/// Asks for a current recovery code when the helper will want one: the
/// caller is not root and the user is already enrolled.
fn proof_if_needed(
    socket: &Path,
    user: &Option<String>,
    why: &str,
) -> Result<Option<Proof>, ClientError> {
    let st = match client::call(socket, AdminRequest::Status { user: user.clone() }, TIMEOUT)? {
        AdminReply::Status(st) => st,
        _ => return Err(ClientError::Unexpected),
    };
    if !st.enrolled || nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let prompt = if st.devices > 0 {
        format!(
            "{} is enrolled. To {why}, type one of your recovery codes, or just press Enter to approve on your phone: ",
            st.user
        )
    } else {
        format!(
            "{} is enrolled. To {why}, type one of your recovery codes: ",
            st.user
        )
    };
    let answer = read_secret(&prompt)?;
    Ok(Some(if answer.is_empty() && st.devices > 0 {
        Proof::Device
    } else {
        Proof::Code { code: answer }
    }))
}

/// Sends `req` and returns its final reply, showing the number to approve
/// on the phone if the helper asks for a device approval first.
fn call_with_progress(socket: &Path, req: AdminRequest) -> Result<AdminReply, ClientError> {
    let mut session = client::Session::start(socket, req)?;
    loop {
        match session.next(TIMEOUT + Duration::from_secs(600))? {
            AdminReply::ApproveOnDevice { number, expires_in } => {
                eprintln!(
                    "Approve on your phone with number {number:02} (expires in {expires_in} s)..."
                );
            }
            other => return Ok(other),
        }
    }
}

fn print_codes(user: &str, codes: &[Zeroizing<String>]) {
    eprintln!(
        "New recovery codes for {user}; any older codes no longer work.\n\
         Each code works once. Keep them somewhere safe, away from this computer:"
    );
    for c in codes {
        println!("{}", c.as_str());
    }
}

fn generate(socket: &Path, user: Option<String>, json: bool) -> Result<(), ClientError> {
    let proof = proof_if_needed(socket, &user, "replace your recovery codes")?;
    let reply = call_with_progress(socket, AdminRequest::RecoveryGenerate { user, proof })?;
    let AdminReply::RecoveryCodes { user, codes } = reply else {
        return Err(ClientError::Unexpected);
    };
    if json {
        let codes: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
        let out = serde_json::json!({ "user": user, "codes": codes });
        println!("{out}");
    } else {
        print_codes(&user, &codes);
    }
    Ok(())
}

/// The QR code in black on white whatever the terminal's colours, so it
/// scans on dark and light themes alike.
fn qr_text(uri: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    let art = code
        .render::<Dense1x2>()
        .quiet_zone(true)
        .dark_color(Dense1x2::Dark)
        .light_color(Dense1x2::Light)
        .build();
    Some(
        art.lines()
            .map(|l| format!("\x1b[30;107m{l}\x1b[0m\n"))
            .collect(),
    )
}

fn enroll(socket: &Path, user: Option<String>) -> Result<(), ClientError> {
    let proof = proof_if_needed(socket, &user, "add a device")?;
    let mut session = client::Session::start(socket, AdminRequest::Enroll { user, proof })?;
    let (uri, expires_in) = loop {
        match session.next(TIMEOUT + Duration::from_secs(600))? {
            AdminReply::ApproveOnDevice { number, expires_in } => {
                eprintln!(
                    "Approve on your phone with number {number:02} (expires in {expires_in} s)..."
                );
            }
            AdminReply::EnrollStarted { uri, expires_in } => break (uri, expires_in),
            _ => return Err(ClientError::Unexpected),
        }
    };
    if let Some(qr) = qr_text(&uri) {
        print!("{qr}");
    }
    println!("Scan the code with the pushmfa app, or give this URI to a software authenticator:");
    println!("{uri}");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let countdown = std::io::stderr().is_terminal().then(|| {
        let done = done.clone();
        std::thread::spawn(move || {
            for left in (1..=expires_in).rev() {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                eprint!("\rWaiting for the device... {left:>3} s left ");
                std::thread::sleep(Duration::from_secs(1));
            }
            eprint!("\r\x1b[K");
        })
    });
    if countdown.is_none() {
        eprintln!("Waiting up to {expires_in} s for the device...");
    }
    let result = session.next(Duration::from_secs(expires_in + 30));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(t) = countdown {
        let _ = t.join();
    }
    let AdminReply::Enrolled {
        user,
        device_id,
        device_name,
        codes,
    } = result?
    else {
        return Err(ClientError::Unexpected);
    };
    println!("Enrolled {device_name} ({device_id}) for {user}.");
    if !codes.is_empty() {
        print_codes(&user, &codes);
    }
    Ok(())
}

fn devices(socket: &Path, command: DevicesCommand) -> Result<(), ClientError> {
    match command {
        DevicesCommand::List { user } => {
            let AdminReply::DeviceList { user, devices } =
                client::call(socket, AdminRequest::Devices { user }, TIMEOUT)?
            else {
                return Err(ClientError::Unexpected);
            };
            if devices.is_empty() {
                println!("{user} has no devices (enroll one with: pushmfa enroll)");
            }
            for d in devices {
                println!("{}  {:<24}  added {}", d.id, d.name, utc(d.added_at));
            }
            Ok(())
        }
        DevicesCommand::Remove { device, user } => {
            let proof = proof_if_needed(socket, &user, "remove a device")?;
            done(
                socket,
                AdminRequest::DeviceRemove {
                    user,
                    device,
                    proof,
                },
            )
        }
        DevicesCommand::Rename { device, name, user } => {
            done(socket, AdminRequest::DeviceRename { user, device, name })
        }
    }
}

fn done(socket: &Path, req: AdminRequest) -> Result<(), ClientError> {
    match call_with_progress(socket, req)? {
        AdminReply::Done { message } => {
            println!("{message}");
            Ok(())
        }
        _ => Err(ClientError::Unexpected),
    }
}

/// Reads one line with echo off when stdin is a terminal.
fn read_secret(prompt: &str) -> Result<Zeroizing<String>, ClientError> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let stdin = std::io::stdin();
    let saved = if stdin.is_terminal() {
        tcgetattr(&stdin).ok()
    } else {
        None
    };
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let mut line = Zeroizing::new(String::new());
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
        eprintln!();
    }
    read.map_err(|e| ClientError::Frame(e.into()))?;
    Ok(Zeroizing::new(line.trim().to_owned()))
}

fn status(socket: &Path, user: Option<String>, json: bool) -> Result<(), ClientError> {
    let AdminReply::Status(st) = client::call(socket, AdminRequest::Status { user }, TIMEOUT)?
    else {
        return Err(ClientError::Unexpected);
    };
    if json {
        println!(
            "{}",
            serde_json::to_string(&st).map_err(|_| ClientError::Unexpected)?
        );
    } else {
        print!("{}", render_status(&st));
    }
    Ok(())
}

fn render_status(st: &UserStatus) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let codes = match st.codes_generated_at {
        Some(t) => format!("{} left (generated {})", st.codes_left, utc(t)),
        None => "none".into(),
    };
    let mut s = format!(
        "user:            {}\nenrolled:        {}\ndevices:         {}\nrecovery codes:  {codes}\nfailures:        {} in a row\nlocked out:      {}\n",
        st.user,
        yes_no(st.enrolled),
        st.devices,
        st.consecutive_failures,
        yes_no(st.locked_out),
    );
    if st.locked_out {
        s.push_str(&format!(
            "                 (unlock with: pushmfa unlock --user {})\n",
            st.user
        ));
    }
    if let Some(wait) = st.retry_after_secs {
        s.push_str(&format!("next attempt:    in {wait} s (backoff)\n"));
    }
    s
}

/// "YYYY-MM-DD HH:MM UTC" from Unix seconds (civil-from-days).
fn utc(t: u64) -> String {
    let days = (t / 86400) as i64;
    let secs = t % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

fn unlock(socket: &Path, user: String) -> Result<(), ClientError> {
    done(socket, AdminRequest::Unlock { user })
}

fn configure(config: &Path, changes: &pushmfa_config::edit::Changes) -> ExitCode {
    if let Err(e) = pushmfa_helper::configure::edit_file(config, changes) {
        eprintln!("pushmfa: {e}");
        return ExitCode::FAILURE;
    }
    println!("Updated {}.", config.display());
    if let Some(url) = &changes.relay_url {
        let url = url.trim_end_matches('/');
        match pushmfa_helper::configure::probe_relay(url, Duration::from_secs(5)) {
            Ok(()) => println!("The relay at {url} answers."),
            Err(e) => println!(
                "warning: the relay at {url} does not answer yet ({e}); logins ask for a recovery code until it does, see [policy] failmode"
            ),
        }
    }
    // Socket activation starts the helper on the next login; a running one must restart.
    if Path::new("/run/systemd/system").is_dir() {
        let status = std::process::Command::new("systemctl")
            .args(["try-restart", "pushmfa-helper.service"])
            .status();
        match status {
            Ok(s) if s.success() => println!("Restarted pushmfa-helper (if it was running)."),
            _ => println!(
                "warning: could not restart pushmfa-helper; run: systemctl restart pushmfa-helper.service"
            ),
        }
    } else {
        println!("Restart pushmfa-helper, if it is running, for the change to take effect.");
    }
    ExitCode::SUCCESS
}

fn doctor(config: &Path, socket: Option<&Path>) -> ExitCode {
    let checks = pushmfa_helper::doctor::run(config, socket);
    for c in &checks {
        println!("{c}");
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed == 0 {
        println!("\nAll checks passed.");
        ExitCode::SUCCESS
    } else {
        println!("\n{failed} check(s) failed: fix them in the order shown.");
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formatting() {
        assert_eq!(super::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc(1_795_000_000), "2026-11-18 11:06 UTC");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00 UTC");
    }
}
