//! `pushmfa enroll`: the QR code, a countdown while the phone registers,
//! then the new device and (first time) the recovery codes.

use crate::account::print_codes;
use crate::calls::{TIMEOUT, show_approval};
use crate::proof::proof_if_needed;
use pushmfa_protocol::admin_client::{self as client, ClientError};
use pushmfa_protocol::enroll::EnrollUri;
use pushmfa_protocol::ipc::{AdminReply, AdminRequest};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

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

/// The QR code and the text forms: a link to the web app (at `app_url`,
/// else the relay's own) that a phone's camera opens, when a phone can use
/// the app there; and the `pushmfa://` URI for software authenticators.
fn show_enrollment(uri: &str, app_url: Option<&str>) {
    let link = EnrollUri::parse(uri)
        .ok()
        .and_then(|u| u.phone_link(app_url));
    let shown = link.as_deref().map_or(uri, String::as_str);
    if let Some(qr) = qr_text(shown) {
        print!("{qr}");
    }
    match &link {
        Some(link) => {
            println!("Scan the code with your phone's camera, or open this link on the phone:");
            println!("{}", link.as_str());
            println!("For a software authenticator (pushmfa-authenticator enroll), this URI:");
        }
        None => println!(
            "The relay is not https, so phones cannot use its web app; give this URI to a software authenticator:"
        ),
    }
    println!("{uri}");
}

pub(crate) fn enroll(
    socket: &Path,
    user: Option<String>,
    app_url: Option<String>,
) -> Result<(), ClientError> {
    let proof = proof_if_needed(socket, &user, "add a device")?;
    let mut session = client::Session::start(socket, AdminRequest::Enroll { user, proof })?;
    let (uri, expires_in) = loop {
        match session.next(TIMEOUT + Duration::from_secs(600))? {
            AdminReply::ApproveOnDevice { number, expires_in } => {
                show_approval(number, expires_in);
            }
            AdminReply::EnrollStarted { uri, expires_in } => break (uri, expires_in),
            _ => return Err(ClientError::Unexpected),
        }
    };
    show_enrollment(&uri, app_url.as_deref());
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
