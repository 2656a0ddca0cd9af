//! The relay's module layout, checked like the helper's: imports run one
//! way (routes -> handlers -> shared request services -> state -> domain),
//! no module imports one that imports it back, and no source file grows
//! past 500 lines (the Lua scripts live in `store/redis/lua/`).
//!
//! `cargo test -p pushmfa-relay --test layout -- --nocapture` prints every
//! edge between modules.

#[path = "../../tests/support/layout.rs"]
mod layout;

use layout::Layout;
use std::path::Path;

/// Where a top-level module stands (see the helper's tests/layout.rs).
fn rank(top: &str) -> u8 {
    match top {
        "crate" => 0,
        "routes" => 1,
        // Handlers: the channel routes and the enrollment routes.
        "channels" | "enrollments" => 2,
        // What every handler does with a request, and the relay's state.
        "api" => 3,
        "clients" => 4,
        "errors" => 5,
        "store" => 6,
        "wakeups" | "tokens" | "webpush" | "webapp" => 7,
        // The accept loop and TLS know nothing of the API.
        "serve" | "tls" | "args" => 8,
        other => panic!("module {other} has no rank in tests/layout.rs: give it one"),
    }
}

fn relay() -> Layout {
    Layout {
        src: Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        rank,
        handlers: &["channels", "enrollments"],
        max_lines: 500,
    }
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    relay().check_no_cycles();
}

#[test]
fn imports_run_from_routes_down_to_the_domain() {
    relay().check_direction();
}

#[test]
fn no_source_file_is_too_long() {
    relay().check_file_lengths();
}

#[test]
fn the_checker_sees_what_it_is_for() {
    layout::check_the_checker();
    // Every top-level module has a rank.
    for m in layout::graph(&relay().src).keys() {
        rank(layout::top(m));
    }
}
