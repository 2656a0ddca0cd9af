//! A user's factors: status, recovery codes, unlock.

use crate::calls::{self, call_with_progress, done};
use crate::proof::proof_if_needed;
use pushmfa_protocol::admin_client::ClientError;
use pushmfa_protocol::ipc::{AdminReply, AdminRequest, UserStatus};
use std::path::Path;
use zeroize::Zeroizing;

pub(crate) fn print_codes(user: &str, codes: &[Zeroizing<String>]) {
    eprintln!(
        "New recovery codes for {user}; any older codes no longer work.\n\
         Each code works once. Keep them somewhere safe, away from this computer:"
    );
    for c in codes {
        println!("{}", c.as_str());
    }
}

pub(crate) fn generate(socket: &Path, user: Option<String>, json: bool) -> Result<(), ClientError> {
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

pub(crate) fn status(socket: &Path, user: Option<String>, json: bool) -> Result<(), ClientError> {
    let AdminReply::Status(st) = calls::call(socket, AdminRequest::Status { user })? else {
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
pub(crate) fn utc(t: u64) -> String {
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

pub(crate) fn unlock(socket: &Path, user: String) -> Result<(), ClientError> {
    done(socket, AdminRequest::Unlock { user })
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
