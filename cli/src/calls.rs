//! Talking to the helper: one call, or a call that may first ask for an
//! approval on the phone (the number is shown while the helper waits).

use pushmfa_protocol::admin_client::{self as client, ClientError};
use pushmfa_protocol::ipc::{AdminReply, AdminRequest};
use std::path::Path;
use std::time::Duration;

/// How long a plain admin call may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

/// Sends one request and returns its reply.
pub(crate) fn call(socket: &Path, req: AdminRequest) -> Result<AdminReply, ClientError> {
    client::call(socket, req, TIMEOUT)
}

/// Sends `req` and returns its final reply, showing the number to approve
/// on the phone if the helper asks for a device approval first.
pub(crate) fn call_with_progress(
    socket: &Path,
    req: AdminRequest,
) -> Result<AdminReply, ClientError> {
    let mut session = client::Session::start(socket, req)?;
    loop {
        match session.next(TIMEOUT + Duration::from_secs(600))? {
            AdminReply::ApproveOnDevice { number, expires_in } => {
                show_approval(number, expires_in);
            }
            other => return Ok(other),
        }
    }
}

/// Shows the number to approve while the helper waits for the phone.
pub(crate) fn show_approval(number: u8, expires_in: u64) {
    eprintln!("Approve on your phone with number {number:02} (expires in {expires_in} s)...");
}

pub(crate) fn done(socket: &Path, req: AdminRequest) -> Result<(), ClientError> {
    match call_with_progress(socket, req)? {
        AdminReply::Done { message } => {
            println!("{message}");
            Ok(())
        }
        _ => Err(ClientError::Unexpected),
    }
}
