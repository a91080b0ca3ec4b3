//! The `soiree` command: runs the benchmark suite (`soiree bench`).

mod bench;
mod error;
mod opt;

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use crate::opt::{Command, Opt};

fn main() -> ExitCode {
    // `soiree bench redis-scale-out` runs its consumers as this binary.
    if let Some(code) = bench::consumer_process() {
        return code;
    }
    let result = match Opt::parse().command {
        Command::Bench(opt) => bench::run(opt),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
