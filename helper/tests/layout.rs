//! The daemon's module layout, checked: imports run one way (start-up ->
//! server -> handlers -> services -> domain), no module imports one that
//! imports it back, and no source file grows past 500 lines.
//!
//! `cargo test -p pushmfa-helper --test layout -- --nocapture` prints every
//! edge between modules.

#[path = "../../tests/support/layout.rs"]
mod layout;

use layout::Layout;
use std::path::Path;

/// Where a top-level module stands: a module may use modules of its own
/// rank or higher, never lower. Every top-level module must be listed.
fn rank(top: &str) -> u8 {
    match top {
        "crate" => 0,
        "server" => 1,
        // Handlers: one login, one admin request.
        "login" | "admin" => 2,
        // Services the handlers share.
        "proof" | "enrollment" => 3,
        "push" | "user_state" | "scoping" => 4,
        "ctx" => 5,
        // Domain modules: no knowledge of connections or handlers.
        "push_book" | "recovery" | "offline_codes" | "invitations" | "groups" | "hashing"
        | "hostkey" | "relay_client" | "conn" | "peer" | "clock" | "log" | "args" => 6,
        "codes" | "tls_pin" | "terminal_qr" => 7,
        other => panic!("module {other} has no rank in tests/layout.rs: give it one"),
    }
}

fn helper() -> Layout {
    Layout {
        src: Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        rank,
        handlers: &["login", "admin"],
        max_lines: 500,
    }
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    helper().check_no_cycles();
}

#[test]
fn imports_run_from_entry_points_down_to_the_domain() {
    helper().check_direction();
}

#[test]
fn no_source_file_is_too_long() {
    helper().check_file_lengths();
}

/// The checks themselves catch what they are for.
#[test]
fn a_cycle_and_a_wrong_way_import_are_seen() {
    layout::check_the_checker();
    assert!(rank("login") > rank("server") && rank("codes") > rank("recovery"));
}
