//! Proving it is you before changing your factors: a recovery code typed
//! with echo off, or Enter to approve on the phone.

use crate::calls;
use pushmfa_protocol::admin_client::ClientError;
use pushmfa_protocol::ipc::{AdminReply, AdminRequest, Proof};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use zeroize::Zeroizing;

/// Asks for a current recovery code when the helper will want one: the
/// caller is not root and the user is already enrolled.
pub(crate) fn proof_if_needed(
    socket: &Path,
    user: &Option<String>,
    why: &str,
) -> Result<Option<Proof>, ClientError> {
    let st = match calls::call(socket, AdminRequest::Status { user: user.clone() })? {
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
        Proof::Device {}
    } else {
        Proof::Code { code: answer }
    }))
}

/// Reads one line with echo off when stdin is a terminal.
pub(crate) fn read_secret(prompt: &str) -> Result<Zeroizing<String>, ClientError> {
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
