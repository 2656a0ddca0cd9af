//! pushmfa-helper: the privileged helper daemon (runs in the foreground).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    pushmfa_helper::run(pushmfa_helper::args::Args::parse())
}
