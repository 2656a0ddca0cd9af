//! `pushmfa policy explain`: which [policy] rule the helper applies to a
//! login, and why.

use crate::calls;
use pushmfa_protocol::admin_client::ClientError;
use pushmfa_protocol::ipc::{AdminReply, AdminRequest, PolicyExplanation};
use std::path::Path;

pub(crate) fn explain(
    socket: &Path,
    user: String,
    service: String,
    rhost: Option<String>,
    json: bool,
) -> Result<(), ClientError> {
    let req = AdminRequest::PolicyExplain {
        user,
        service,
        rhost,
    };
    let AdminReply::PolicyExplanation(e) = calls::call(socket, req)? else {
        return Err(ClientError::Unexpected);
    };
    if json {
        println!(
            "{}",
            serde_json::to_string(&e).map_err(|_| ClientError::Unexpected)?
        );
    } else {
        print!("{}", text(&e));
    }
    Ok(())
}

/// The explanation for people.
fn text(e: &PolicyExplanation) -> String {
    let mut out = format!(
        "user {}, service {}, rhost {}\n",
        e.user,
        e.service,
        e.rhost.as_deref().unwrap_or("(unset)")
    );
    if let Some(groups) = &e.groups {
        let list = if groups.is_empty() {
            "(none, or not a user NSS knows)".to_string()
        } else {
            groups.join(", ")
        };
        out.push_str(&format!("groups (NSS): {list}\n"));
    }
    out.push_str(&format!("rule: {}: {}\n", e.rule, e.why));
    if e.required {
        out.push_str("result: second factor required\n");
        for s in &e.settings {
            out.push_str(&format!("  {s}\n"));
        }
    } else {
        out.push_str(
            "result: no second factor (the module returns PAM_IGNORE; the rest of the PAM stack decides)\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_the_rule_the_groups_and_the_result() {
        let mut e = PolicyExplanation {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: Some("10.1.2.3".into()),
            groups: Some(vec!["alice".into(), "wheel".into()]),
            required: false,
            rule: "exempt_networks".into(),
            why: "10.1.2.3 is inside 10.0.0.0/8".into(),
            settings: vec![],
        };
        let t = text(&e);
        assert!(t.contains("groups (NSS): alice, wheel\n"), "{t}");
        assert!(
            t.contains("rule: exempt_networks: 10.1.2.3 is inside 10.0.0.0/8\n"),
            "{t}"
        );
        assert!(t.contains("result: no second factor"), "{t}");
        e.required = true;
        e.settings = vec!["mode = prompt".into()];
        assert!(text(&e).contains("result: second factor required\n  mode = prompt\n"));
    }
}
