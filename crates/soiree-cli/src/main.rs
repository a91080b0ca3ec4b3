//! The `soiree` command: inspects and repairs stores (`soiree stats`,
//! `events`, `dead-letters`, `replay`, `tail`, …) and runs the benchmark
//! suite (`soiree bench`).

mod audit;
mod bench;
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
use crate::opt::{Command, Opt};

fn main() -> ExitCode {
    // `soiree bench redis-scale-out` runs its consumers as this binary.
    if let Some(code) = bench::consumer_process() {
        return code;
    }
    let opt = Opt::parse();
    let result = match opt.command {
        Command::Bench(bench) => bench::run(bench),
        command => {
            audit::init_logging();
            cmd::run(&opt.store, command).map(|()| ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
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
