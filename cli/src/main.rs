//! pushmfa: manage pushmfa second factors (talks to pushmfa-helper).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    pushmfa_cli::run(pushmfa_cli::args::Cli::parse())
}
