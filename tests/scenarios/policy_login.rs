//! Who needs the second factor ([policy] scoping rules) through real
//! logins: the real module and libpam, a real helper whose users and groups
//! come from NSS (nss_wrapper files, as LDAP or SSSD would answer), and
//! `pushmfa policy explain` agreeing with what each login does.

use pushmfa_tests::{Answer, TestEnv, bin, rc};
use serde_json::Value;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh
alice:x:1001:1001::/home/alice:/bin/sh
bob:x:1002:1002::/home/bob:/bin/sh
carol:x:1003:1003::/home/carol:/bin/sh
breakglass:x:1004:1004::/root:/bin/sh
dave:x:1005:2001::/home/dave:/bin/sh
erin:x:1006:1006::/home/erin:/bin/sh
";
/// admins: alice by membership, dave by his primary group; robots: carol.
const GROUP: &str = "root:x:0:
alice:x:1001:
bob:x:1002:
carol:x:1003:
breakglass:x:1004:
erin:x:1006:
admins:x:2001:alice,breakglass,erin
robots:x:2003:carol
";

const RULES: &str = "[policy]
require_groups = [\"admins\", \"robots\"]
exempt_users = [\"breakglass\"]
exempt_groups = [\"robots\"]
exempt_networks = [\"10.0.0.0/8\", \"2001:db8::/32\"]

[policy.services.cron-like]
unenrolled = \"ignore\"
";

/// A helper with the rules and NSS above; `svc` and `cron-like` stacks end
/// in pam_permit, so PAM_IGNORE from pushmfa lets the login through and a
/// required second factor with no answer fails it.
fn env(rules: &str) -> TestEnv {
    let mut e = TestEnv::new(rules);
    e.nss(PASSWD, GROUP);
    e.start_helper();
    for svc in ["sshd", "sudo", "cron-like"] {
        let stack = format!(
            "auth required {} socket={}\nauth required pam_permit.so\n",
            pushmfa_tests::module_path().display(),
            e.socket.display()
        );
        std::fs::write(e.pam_dir.join(svc), stack).unwrap_or_else(|err| panic!("{err}"));
    }
    e
}

/// What a login did: "ignore" (no prompt, PAM_IGNORE) or "asked" (a
/// prompt that, unanswered, failed the login), and its log line.
fn login(e: &TestEnv, user: &str, service: &str, rhost: Option<&str>) -> (&'static str, String) {
    let needle = format!("login user=\"{user}\" service=\"{service}\"");
    let before = e.helper_log().matches(&needle).count();
    let mut run = e.pam(service, user).answer(Answer::Fail);
    if let Some(r) = rhost {
        run = run.rhost(r);
    }
    let (code, seen) = run.run();
    // This login's own line: the one after those already there.
    let line = e
        .wait_for_log_lines(&needle, before + 1)
        .lines()
        .filter(|l| l.contains(&needle))
        .nth(before)
        .unwrap_or_default()
        .to_owned();
    match (code, seen.is_empty()) {
        (rc::SUCCESS, true) => ("ignore", line),
        (rc::CONV_ERR, false) => ("asked", line),
        other => panic!("{user} {service} {rhost:?}: unexpected {other:?} {seen:?}"),
    }
}

/// `pushmfa policy explain`, as JSON.
fn explain(e: &TestEnv, user: &str, service: &str, rhost: Option<&str>) -> Value {
    let mut args = vec![
        "policy",
        "explain",
        "--user",
        user,
        "--service",
        service,
        "--json",
    ];
    if let Some(r) = rhost {
        args.extend(["--rhost", r]);
    }
    let out = e.pushmfa(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|err| panic!("{err}"))
}

#[test]
fn each_rule_in_order_and_explain_agrees_with_every_login() {
    let e = env(RULES);
    // user, service, rhost, what the login does, the rule that decides.
    let table: &[(&str, &str, Option<&str>, &str, &str)] = &[
        // A break-glass account: exempt by name, though it is in admins.
        (
            "breakglass",
            "sshd",
            Some("192.0.2.1"),
            "ignore",
            "exempt_users",
        ),
        // carol is in robots: exempt by group (before require_groups).
        (
            "carol",
            "sshd",
            Some("192.0.2.1"),
            "ignore",
            "exempt_groups",
        ),
        // alice (admins, a supplementary group only NSS knows).
        (
            "alice",
            "sshd",
            Some("192.0.2.1"),
            "asked",
            "require_groups",
        ),
        (
            "alice",
            "sshd",
            Some("10.9.8.7"),
            "ignore",
            "exempt_networks",
        ),
        (
            "alice",
            "sshd",
            Some("2001:db8::42"),
            "ignore",
            "exempt_networks",
        ),
        // Unset PAM_RHOST (sudo, a console) never matches a network.
        ("alice", "sudo", None, "asked", "require_groups"),
        // A host name never matches either.
        (
            "alice",
            "sshd",
            Some("10.0.0.1.example.org"),
            "asked",
            "require_groups",
        ),
        // dave is in admins through his primary group.
        ("dave", "sshd", None, "asked", "require_groups"),
        // bob is in no required group.
        ("bob", "sshd", Some("192.0.2.1"), "ignore", "require_groups"),
        // A user NSS does not know (or cannot look up) is never exempt.
        ("nobody-here", "sshd", None, "asked", "nss_lookup"),
        // Per service: unenrolled = "ignore" there only (alice has no codes).
        ("alice", "cron-like", None, "ignore", "require_groups"),
    ];
    for (user, service, rhost, does, rule) in table {
        let (did, line) = login(&e, user, service, *rhost);
        assert_eq!(did, *does, "{user} {service} {rhost:?}: {line}");
        assert!(line.ends_with(&format!(" rule={rule}")), "{line}");
        let x = explain(&e, user, service, *rhost);
        assert_eq!(x["rule"], *rule, "{x}");
        // explain says "required" exactly when the rules ask (cron-like:
        // required, then unenrolled = ignore lets alice through).
        let required = x["required"].as_bool().unwrap();
        assert_eq!(required, *does == "asked" || *service == "cron-like", "{x}");
        if required && *service == "cron-like" {
            assert!(
                x["settings"]
                    .as_array()
                    .unwrap()
                    .contains(&"unenrolled = ignore".into()),
                "{x}"
            );
        }
    }
    let x = explain(&e, "alice", "sshd", Some("10.9.8.7"));
    assert_eq!(x["why"], "10.9.8.7 is inside 10.0.0.0/8");
    let groups = x["groups"].as_array().unwrap();
    assert!(
        groups.contains(&"admins".into()) && groups.contains(&"alice".into()),
        "{x}"
    );
}

#[test]
fn without_rules_everyone_is_asked_and_groups_are_not_looked_up() {
    let e = env("");
    let (did, line) = login(&e, "bob", "sshd", Some("10.1.2.3"));
    assert_eq!(did, "asked", "{line}");
    assert!(line.ends_with(" rule=default"), "{line}");
    let x = explain(&e, "bob", "sshd", Some("10.1.2.3"));
    assert_eq!(x["groups"], Value::Null, "{x}");
    assert_eq!(x["required"], true);
}

#[test]
fn explain_is_for_root_only_and_the_text_form_says_why() {
    let e = env(RULES);
    let out = e.pushmfa(&[
        "policy",
        "explain",
        "--user",
        "alice",
        "--service",
        "sshd",
        "--rhost",
        "10.1.2.3",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rule: exempt_networks: 10.1.2.3 is inside 10.0.0.0/8"),
        "{text}"
    );
    assert!(
        text.contains("result: no second factor (the module returns PAM_IGNORE"),
        "{text}"
    );
    if pushmfa_tests::is_root() {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin("pushmfa"))
            .arg("--socket")
            .arg(&e.socket)
            .args(["policy", "explain", "--user", "alice", "--service", "sshd"])
            .output()
            .unwrap_or_else(|err| panic!("{err}"));
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("only root may explain the policy"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_report_lists_who_is_in_scope_and_who_would_be_locked_out() {
    let e = env(&format!(
        "{RULES}\n[recovery]\nbackoff_after = 1\nlockout_after = 1\n"
    ));
    // alice passes with a recovery code; erin's only code attempt is wrong
    // (locked out); dave (admins by primary group) has nothing.
    let codes = e.generate("alice");
    let (code, _) = e.pam("sshd", "alice").answer(codes[0].as_str()).run();
    assert_eq!(code, rc::SUCCESS);
    e.generate("erin");
    let (code, _) = e
        .pam("sshd", "erin")
        .answer("AAAA-BBBB-CCCC-DDDD")
        .answer(Answer::Fail)
        .run();
    assert_ne!(code, rc::SUCCESS);
    let out = e.pushmfa(&["report", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = |user: &str| -> Value {
        report["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["user"] == user)
            .cloned()
            .unwrap_or_else(|| panic!("{user} missing from {report}"))
    };
    let alice = row("alice");
    assert_eq!(
        (alice["in_scope"].clone(), alice["codes_left"].clone()),
        (true.into(), 9.into())
    );
    assert_eq!(alice["last_method"], "recovery-code");
    assert_eq!(alice["would_be_locked_out"], false);
    let dave = row("dave");
    assert_eq!(
        (
            dave["in_scope"].clone(),
            dave["would_be_locked_out"].clone()
        ),
        (true.into(), true.into()),
        "{dave}"
    );
    assert_eq!(dave["last_method"], Value::Null);
    let erin = row("erin");
    assert_eq!(
        (
            erin["locked_out"].clone(),
            erin["would_be_locked_out"].clone()
        ),
        (true.into(), true.into()),
        "{erin}"
    );
    for (user, rule) in [
        ("bob", "require_groups"),
        ("carol", "exempt_groups"),
        ("breakglass", "exempt_users"),
    ] {
        let r = row(user);
        assert_eq!(
            (r["in_scope"].clone(), r["rule"].clone()),
            (false.into(), rule.into()),
            "{r}"
        );
        assert_eq!(r["would_be_locked_out"], false);
    }
    // root (uid 0) is no person by the uid convention, and not enrolled.
    assert!(
        !report["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["user"] == "root"),
        "{report}"
    );
    // The table says the same for people.
    let out = e.pushmfa(&["report"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("dave") && l.ends_with("LOCKED OUT: no device and no code")),
        "{text}"
    );
    assert!(text.contains("3 in scope, 2 would be locked out"), "{text}");
}
