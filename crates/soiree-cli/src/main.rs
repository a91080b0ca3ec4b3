//! The `soiree` command: inspects and repairs stores (`soiree stats`,
//! `events`, `dead-letters`, `replay`, `tail`, …) and serves the dashboard.
//! The benchmark suite is the `soiree-bench` binary of its own crate.

mod audit;
mod cmd;
mod error;
mod escape;
mod opt;
mod store;
mod time;
mod view;

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use crate::error::Error;
use crate::opt::Opt;

fn main() -> ExitCode {
    let opt = Opt::parse();
    audit::init_logging();
    match cmd::run(&opt.store, opt.command) {
        Ok(()) => ExitCode::SUCCESS,
        // `soiree events | head`: the reader is gone, nothing to report.
        Err(Error::Output(err)) if err.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {}", escape::escape(&err.to_string()));
            ExitCode::from(err.exit_code())
        }
    }
}
