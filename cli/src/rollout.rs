//! Rolling out to a team: `pushmfa report` (who is in scope and ready,
//! also for `doctor`) and `pushmfa invite` (first-login enrollment).

use crate::account::utc;
use crate::calls;
use pushmfa_protocol::admin_client::ClientError;
use pushmfa_protocol::ipc::{AdminReply, AdminRequest, UserReport};
use std::path::Path;

/// The report's rows, from the helper.
pub(crate) fn fetch(socket: &Path) -> Result<Vec<UserReport>, ClientError> {
    match calls::call(socket, AdminRequest::Report {})? {
        AdminReply::Report { users } => Ok(users),
        _ => Err(ClientError::Unexpected),
    }
}

pub(crate) fn report(socket: &Path, json: bool) -> Result<(), ClientError> {
    let users = fetch(socket)?;
    if json {
        let text = serde_json::to_string(&serde_json::json!({ "users": users }))
            .map_err(|_| ClientError::Unexpected)?;
        println!("{text}");
    } else {
        print!("{}", table(&users));
    }
    Ok(())
}

pub(crate) fn invite(socket: &Path, user: String, days: u32) -> Result<(), ClientError> {
    let AdminReply::Invitation {
        user,
        code,
        expires_at,
    } = calls::call(socket, AdminRequest::Invite { user, days })?
    else {
        return Err(ClientError::Unexpected);
    };
    eprintln!(
        "Invitation for {user}, until {}. Give it to {user} only; it works once, at a login, before the enrollment QR code:",
        utc(expires_at)
    );
    println!("{}", code.as_str());
    Ok(())
}

fn table(users: &[UserReport]) -> String {
    let mut out = format!(
        "{:<16} {:<24} {:>7} {:>5}  {:<34} {}\n",
        "USER", "IN SCOPE (RULE)", "DEVICES", "CODES", "LAST LOGIN", "IF ENABLED NOW"
    );
    for u in users {
        let scope = format!("{} ({})", if u.in_scope { "yes" } else { "no" }, u.rule);
        let last = match (&u.last_method, u.last_at) {
            (Some(m), Some(t)) => format!("{m}, {}", utc(t)),
            _ => "never".into(),
        };
        let verdict = if !u.in_scope {
            "not asked"
        } else if u.would_be_locked_out {
            "LOCKED OUT: no device and no code"
        } else if u.locked_out && u.devices > 0 {
            "ok (codes locked: pushmfa unlock)"
        } else {
            "ok"
        };
        out.push_str(&format!(
            "{:<16} {:<24} {:>7} {:>5}  {:<34} {verdict}\n",
            u.user, scope, u.devices, u.codes_left, last
        ));
    }
    let locked = users.iter().filter(|u| u.would_be_locked_out).count();
    let in_scope = users.iter().filter(|u| u.in_scope).count();
    out.push_str(&format!(
        "\n{in_scope} in scope, {locked} would be locked out (enroll them: pushmfa enroll --user NAME).\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_who_would_be_locked_out() {
        let row = |user: &str, in_scope, devices, codes_left, locked| UserReport {
            user: user.into(),
            in_scope,
            rule: "require_groups".into(),
            devices,
            codes_left,
            locked_out: false,
            last_method: None,
            last_at: None,
            would_be_locked_out: locked,
        };
        let mut alice = row("alice", true, 1, 9, false);
        alice.last_method = Some("push".into());
        alice.last_at = Some(0);
        let t = table(&[
            alice,
            row("bob", false, 0, 0, false),
            row("dave", true, 0, 0, true),
        ]);
        assert!(t.contains("push, 1970-01-01 00:00 UTC"), "{t}");
        assert!(
            t.lines()
                .any(|l| l.starts_with("bob") && l.ends_with("not asked")),
            "{t}"
        );
        assert!(
            t.lines()
                .any(|l| l.starts_with("dave") && l.ends_with("LOCKED OUT: no device and no code")),
            "{t}"
        );
        assert!(
            t.ends_with(
                "2 in scope, 1 would be locked out (enroll them: pushmfa enroll --user NAME).\n"
            ),
            "{t}"
        );
    }
}
