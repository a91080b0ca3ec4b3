//! Command-line options.

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};

use crate::bench;

/// Soiree: an event bus for Rust services.
#[derive(Debug, Parser)]
#[command(name = "soiree", version, about)]
pub(crate) struct Opt {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the benchmark suite: one line of figures per scenario; exits
    /// non-zero when a scenario's result is wrong.
    Bench(BenchOpt),
}

/// Options of `soiree bench`.
#[derive(Debug, Args)]
#[command(after_help = bench::scenario_help())]
pub(crate) struct BenchOpt {
    /// Scenarios to run (default: every in-memory scenario).
    #[arg(value_name = "SCENARIO", value_parser = PossibleValuesParser::new(bench::scenario_names()))]
    pub(crate) scenarios: Vec<String>,

    /// Events per scenario, instead of each scenario's default.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) n: Option<u64>,

    /// Redis server for the Redis scenarios.
    #[arg(long, value_name = "URL")]
    pub(crate) redis: Option<String>,

    /// Postgres server for the SQL scenarios.
    #[arg(long, value_name = "URL")]
    pub(crate) postgres: Option<String>,

    /// Print one JSON object per scenario instead of key=value lines.
    #[arg(long)]
    pub(crate) json: bool,
}
