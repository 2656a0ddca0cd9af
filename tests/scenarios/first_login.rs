//! Enrollment at a first login (policy.unenrolled = "enroll"): the real
//! module and helper show the enrollment QR code inside the login, the
//! real `pushmfa-authenticator` enrolls from the URI it prints, the user
//! gets recovery codes, and the login completes; only until enroll_until,
//! and with an invitation when the policy asks for one.

use pushmfa_tests::push::{Relay, relay_config};
use pushmfa_tests::{Answer, TestEnv, bin, rc};
use std::cell::RefCell;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::rc::Rc;

const SVC: &str = "pushmfa-test";

fn setup(policy: &str) -> (Relay, TestEnv) {
    let relay = Relay::start();
    let mut e = TestEnv::new(&relay_config(&relay.url, policy));
    e.start_helper();
    e.service(SVC, "");
    (relay, e)
}

/// Answers the enrollment prompt: the authenticator enrolls from the URI
/// (in the background, as the phone would while the prompt waits), then
/// Enter.
fn enroll_from_prompt(
    store: PathBuf,
    phone: Rc<RefCell<Option<Child>>>,
    seen: Rc<RefCell<String>>,
) -> Answer {
    Answer::Reply(Box::new(move |prompt: &str| {
        *seen.borrow_mut() = prompt.to_owned();
        let uri = prompt
            .lines()
            .find(|l| l.starts_with("pushmfa://enroll?"))
            .unwrap_or_default();
        let child = Command::new(bin("pushmfa-authenticator"))
            .arg("--store")
            .arg(&store)
            .args(["enroll", uri, "--name", "first phone"])
            .spawn()
            .ok();
        *phone.borrow_mut() = child;
        String::new()
    }))
}

fn keep(seen: Rc<RefCell<String>>) -> Answer {
    Answer::Reply(Box::new(move |prompt: &str| {
        *seen.borrow_mut() = prompt.to_owned();
        String::new()
    }))
}

#[test]
fn an_unenrolled_user_enrolls_at_the_login_and_gets_in() {
    let (_relay, e) = setup("[policy]\nunenrolled = \"enroll\"\nenroll_until = \"2999-12-31\"\n");
    let store = e.dir.path().join("phone");
    let phone = Rc::new(RefCell::new(None));
    let (qr, codes) = (
        Rc::new(RefCell::new(String::new())),
        Rc::new(RefCell::new(String::new())),
    );
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(enroll_from_prompt(store.clone(), phone.clone(), qr.clone()))
        .answer(keep(codes.clone()))
        .run();
    if let Some(mut c) = phone.borrow_mut().take() {
        assert!(c.wait().unwrap().success(), "the authenticator was refused");
    }
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    let qr = qr.borrow();
    assert!(
        qr.starts_with("alice needs a second factor from now on: enroll a phone now"),
        "{qr}"
    );
    assert!(qr.lines().any(|l| l.starts_with('█')), "a QR code: {qr}");
    assert!(
        qr.lines()
            .filter(|l| l.starts_with('█'))
            .all(|l| l.chars().count() <= 80)
    );
    assert!(qr.ends_with("Press Enter once your phone says the account was added: "));
    let codes = codes.borrow();
    assert!(codes.starts_with("Your recovery codes"), "{codes}");
    let shown = codes
        .lines()
        .filter(|l| l.len() == 19 && l.matches('-').count() == 3)
        .count();
    assert_eq!(shown, 10, "{codes}");
    let log = e.wait_for_log("outcome=success");
    assert!(log.contains("FIRST-LOGIN ENROLLMENT user=\"alice\" service=\"pushmfa-test\" rhost=\"203.0.113.7\" device=\"first phone\""), "{log}");
    assert!(
        log.contains("method=enroll device=\"first phone\""),
        "{log}"
    );
    let st = e.status("alice");
    assert_eq!((st.devices, st.codes_left), (1, 10));
    // From now on it is an ordinary enrolled user: the push prompt.
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(Answer::Fail)
        .run();
    assert_eq!(code, rc::CONV_ERR);
    assert!(
        seen[0].contains("Approve on your phone with number"),
        "{seen:?}"
    );
}

#[test]
fn after_enroll_until_it_acts_as_deny() {
    let (_relay, e) = setup("[policy]\nunenrolled = \"enroll\"\nenroll_until = \"2020-01-31\"\n");
    let (code, seen) = e
        .pam(SVC, "alice")
        .rhost("203.0.113.7")
        .answer(Answer::Fail)
        .run();
    assert_eq!(code, rc::CONV_ERR);
    // The same prompt an unenrolled user gets under "deny" (a decoy number).
    assert!(
        seen[0].contains("Approve on your phone with number"),
        "{seen:?}"
    );
    let log = e.wait_for_log("first-login enrollment not offered");
    assert!(
        log.contains("policy.enroll_until (2020-01-31) has passed"),
        "{log}"
    );
    assert_eq!(e.status("alice").devices, 0);
}

#[test]
fn with_invitations_only_the_invited_code_opens_enrollment() {
    let (_relay, e) = setup(
        "[policy]\nunenrolled = \"enroll\"\nenroll_until = \"2999-12-31\"\nenroll_invitation = true\n",
    );
    // No invitation: refused, nothing enrolled.
    let (code, seen) = e.pam(SVC, "alice").answer("AAAA-BBBB-CCCC-DDDD").run();
    assert_eq!(code, rc::AUTH_ERR, "{seen:?}");
    assert_eq!(seen[0], "prompt:Invitation code from your administrator: ");
    assert!(
        seen[1].contains("That invitation code is not valid"),
        "{seen:?}"
    );
    let out = e.pushmfa(&["invite", "--user", "alice", "--days", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let invitation = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(invitation.len(), 19, "{invitation}");
    assert!(
        e.wait_for_log("invitation created user=\"alice\" days=3")
            .contains("by_uid=")
    );
    let store = e.dir.path().join("phone");
    let phone = Rc::new(RefCell::new(None));
    let seen_qr = Rc::new(RefCell::new(String::new()));
    let (code, seen) = e
        .pam(SVC, "alice")
        .answer(invitation.to_lowercase().as_str())
        .answer(enroll_from_prompt(store, phone.clone(), seen_qr))
        .answer("")
        .run();
    if let Some(mut c) = phone.borrow_mut().take() {
        let _ = c.wait();
    }
    assert_eq!(code, rc::SUCCESS, "{seen:?}");
    assert!(
        e.wait_for_log("FIRST-LOGIN ENROLLMENT")
            .contains("invitation: used")
    );
    assert!(
        !e.helper_log().contains(&invitation),
        "the invitation reached the log"
    );
    // Used up: a second user with the same code gets nowhere, and alice is
    // enrolled now anyway.
    assert_eq!(e.status("alice").devices, 1);
}
