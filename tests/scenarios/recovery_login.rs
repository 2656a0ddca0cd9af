//! Recovery-code logins through the real module and libpam.

use pushmfa_tests::{Answer, TestEnv, rc};

const SVC: &str = "pushmfa-test";
const PROMPT: &str = "prompt:Recovery code: ";
const WRONG: &str = "error:That recovery code is not valid.";
const TOO_MANY: &str = "error:Too many wrong recovery codes.";

fn env_with(extra: &str) -> TestEnv {
    let mut e = TestEnv::new(extra);
    e.start_helper();
    e.service(SVC, "");
    e
}

fn env() -> TestEnv {
    env_with("")
}

#[test]
fn code_is_accepted_once_and_never_logged() {
    let e = env();
    let codes = e.generate("alice");
    let (code, seen) = e
        .pam(SVC, "alice")
        .answer(codes[0].as_str())
        .rhost("192.0.2.7")
        .tty("pts/3")
        .ruser("bob")
        .run();
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    assert_eq!(seen, [PROMPT]);
    let log = e.wait_for_log("outcome=success");
    assert!(
        log.contains("login user=\"alice\" service=\"pushmfa-test\" rhost=\"192.0.2.7\" tty=\"pts/3\" ruser=\"bob\""),
        "{log}"
    );
    assert!(log.contains("codes_left=9"), "{log}");

    // Reuse: rejected, the user is asked again; then the application gives up.
    let (code, seen) = e
        .pam(SVC, "alice")
        .answer(codes[0].as_str())
        .answer(Answer::Fail)
        .run();
    assert_eq!(code, rc::CONV_ERR);
    assert_eq!(seen, [PROMPT, WRONG, PROMPT]);
    assert_eq!(e.status("alice").codes_left, 9);

    let log = e.helper_log();
    for c in &codes {
        assert!(
            !log.contains(c.as_str()) && !log.contains(&c.replace('-', "")),
            "code leaked into the log"
        );
    }
}

#[test]
fn three_wrong_codes_give_maxtries() {
    let e = env();
    e.generate("alice");
    let wrong = "0000-0000-0000-0000";
    let (code, seen) = e
        .pam(SVC, "alice")
        .answer(wrong)
        .answer(wrong)
        .answer(wrong)
        .run();
    assert_eq!(code, rc::MAXTRIES);
    assert_eq!(
        seen,
        [PROMPT, WRONG, PROMPT, WRONG, PROMPT, WRONG, TOO_MANY]
    );
    assert_eq!(e.status("alice").consecutive_failures, 3);
    e.wait_for_log("outcome=maxtries (wrong recovery codes)");
}

#[test]
fn sloppy_input_is_accepted() {
    let e = env();
    let codes = e.generate("alice");
    // Lower case without dashes.
    let typed = codes[0].to_lowercase().replace('-', "");
    assert_eq!(
        e.pam(SVC, "alice").answer(typed.as_str()).run().0,
        rc::SUCCESS
    );
    // Spaces instead of dashes.
    let typed = codes[1].replace('-', " ");
    assert_eq!(
        e.pam(SVC, "alice").answer(typed.as_str()).run().0,
        rc::SUCCESS
    );
    // Confusables: 1 typed as l or I, 0 typed as O.
    let with_confusable = codes[2..]
        .iter()
        .find(|c| c.contains('1') || c.contains('0'))
        .unwrap_or_else(|| panic!("no code with 0 or 1 in {codes:?}"));
    let typed = with_confusable
        .replace('1', "l")
        .replacen('l', "I", 1)
        .replace('0', "o");
    assert_ne!(&typed, with_confusable);
    assert_eq!(
        e.pam(SVC, "alice").answer(typed.as_str()).run().0,
        rc::SUCCESS
    );
    assert_eq!(e.status("alice").codes_left, 7);
}

#[test]
fn overlong_input_is_rejected_before_hashing() {
    let e = env();
    e.generate("alice");
    let long = "A".repeat(65);
    let huge = "B".repeat(100_000);
    let (code, seen) = e
        .pam(SVC, "alice")
        .answer(long.as_str())
        .answer(huge.as_str())
        .answer("not-a-code!")
        .run();
    assert_eq!(code, rc::MAXTRIES);
    let not_a_code = "error:That is not a recovery code (they look like XXXX-XXXX-XXXX-XXXX).";
    assert_eq!(
        seen,
        [
            PROMPT, not_a_code, PROMPT, not_a_code, PROMPT, not_a_code, TOO_MANY
        ]
    );
    // Never hashed, so never counted as a guess.
    assert_eq!(e.status("alice").consecutive_failures, 0);
}

#[test]
fn unknown_unenrolled_and_enrolled_users_see_the_same_prompts() {
    let e = env();
    e.generate("enrolled");
    let wrong = "0000-0000-0000-0000";
    let mut transcripts = Vec::new();
    for user in ["enrolled", "unenrolled", "no-such-user-4711", "Bad/Name"] {
        let (code, seen) = e
            .pam(SVC, user)
            .answer(wrong)
            .answer(wrong)
            .answer(wrong)
            .run();
        assert_eq!(code, rc::MAXTRIES, "{user}");
        transcripts.push(seen);
    }
    assert!(
        transcripts.windows(2).all(|w| w[0] == w[1]),
        "{transcripts:#?}"
    );
}

#[test]
fn unenrolled_users_pass_through_only_with_the_ignore_policy() {
    let e = env_with("[policy]\nunenrolled = \"ignore\"\n");
    // PAM_IGNORE leaves the decision to the rest of the stack, here pam_permit
    // (in a real stack: the primary modules that already ran).
    let stack = format!(
        "auth required {} socket={}\nauth required pam_permit.so\n",
        pushmfa_tests::module_path().display(),
        e.socket.display()
    );
    std::fs::write(e.pam_dir.join("rollout"), stack).unwrap_or_else(|err| panic!("{err}"));
    let (code, seen) = e.pam("rollout", "newcomer").run();
    assert_eq!(code, rc::SUCCESS);
    assert!(seen.is_empty(), "{seen:?}");
    e.wait_for_log("outcome=ignore (not enrolled (policy: ignore))");
    // An enrolled user is still asked, and failing the prompt fails the stack.
    e.generate("alice");
    let (code, seen) = e.pam("rollout", "alice").answer(Answer::Fail).run();
    assert_eq!(code, rc::CONV_ERR);
    assert_eq!(seen, [PROMPT]);
    // With the default policy the same unenrolled user is prompted and fails.
    let strict = env();
    let (code, seen) = strict.pam(SVC, "newcomer").answer(Answer::Fail).run();
    assert_eq!(code, rc::CONV_ERR);
    assert_eq!(seen, [PROMPT]);
}

#[test]
fn conversation_failure_is_a_failure() {
    let e = env();
    e.generate("alice");
    let (code, seen) = e.pam(SVC, "alice").answer(Answer::Fail).run();
    assert_eq!(code, rc::CONV_ERR);
    assert_eq!(seen, [PROMPT]);
    e.wait_for_log("outcome=denied (conversation failed)");
}

#[test]
fn pamtester_login_succeeds_then_reuse_fails() {
    let e = env();
    let codes = e.generate("alice");
    let out = e.pamtester(
        SVC,
        "alice",
        &format!("{}\n", codes[0]),
        &["rhost=198.51.100.4", "tty=pts/9"],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("successfully authenticated"), "{stdout}");
    e.wait_for_log("rhost=\"198.51.100.4\" tty=\"pts/9\"");

    let out = e.pamtester(SVC, "alice", &format!("{0}\n{0}\n{0}\n", codes[0]), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("That recovery code is not valid."),
        "{stderr}"
    );
    assert!(stderr.contains("maximum number of retries"), "{stderr}");
}

/// The helper's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn an_idle_helper_gives_the_hashing_memory_back() {
    // The default cost: 19 MiB of Argon2 memory per hash.
    let e = env_with("[recovery]\nargon2_memory_kib = 19456\nargon2_iterations = 2\n");
    let codes = e.generate("alice");
    let pid = e.helper_pid();
    let fresh = rss_kib(pid);
    for code in [codes[0].as_str(), "0000-0000-0000-0000"] {
        e.pam(SVC, "alice").answer(code).run();
    }
    // The verdict is sent before the last buffer is released: allow a
    // moment (a long one on a loaded machine; it ends as soon as it is small).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut idle = rss_kib(pid);
    while idle > 15 * 1024 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        idle = rss_kib(pid);
    }
    println!("helper RSS: fresh {fresh} KiB, idle after two codes {idle} KiB");
    assert!(
        idle <= 15 * 1024,
        "idle helper keeps {idle} KiB after hashing (fresh: {fresh} KiB)"
    );
}

/// `key=value` fields of a log line outside double quotes (a quoted value
/// may contain `\"` and `\\`), in order.
fn fields(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    let mut word = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // A quoted value: skip to its closing quote.
                let mut value = String::new();
                while let Some(q) = chars.next() {
                    match q {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        q => value.push(q),
                    }
                }
                if let Some(key) = word.strip_suffix('=') {
                    out.push((key.to_owned(), value));
                }
                word.clear();
            }
            ' ' => {
                if let Some((k, v)) = word.split_once('=') {
                    out.push((k.to_owned(), v.to_owned()));
                }
                word.clear();
            }
            c => word.push(c),
        }
    }
    if let Some((k, v)) = word.split_once('=') {
        out.push((k.to_owned(), v.to_owned()));
    }
    out
}

#[test]
fn values_a_caller_controls_cannot_forge_the_decision_line() {
    let e = env();
    let forged_user = "mallory outcome=success (method=push)";
    let forged_rhost = r#"x" outcome=success y="\"#;
    let (code, _) = e
        .pam(SVC, forged_user)
        .rhost(forged_rhost)
        .tty("pts/1 outcome=success")
        .answer("0000-0000-0000-0000")
        .answer("0000-0000-0000-0000")
        .answer("0000-0000-0000-0000")
        .run();
    assert_ne!(code, rc::SUCCESS);
    let log = e.wait_for_log("outcome=maxtries");
    let line = log
        .lines()
        .find(|l| l.contains("login user="))
        .unwrap_or_else(|| panic!("no decision line:\n{log}"));
    let f = fields(line);
    let outcomes: Vec<_> = f.iter().filter(|(k, _)| k == "outcome").collect();
    assert_eq!(outcomes.len(), 1, "{line}");
    assert_eq!(outcomes[0].1, "maxtries", "{line}");
    let get = |k: &str| f.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    assert_eq!(get("user"), Some(forged_user), "{line}");
    assert_eq!(get("rhost"), Some(forged_rhost), "{line}");
}
