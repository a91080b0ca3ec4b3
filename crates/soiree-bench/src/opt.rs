//! Command-line options.

use clap::Parser;
use clap::builder::PossibleValuesParser;

use std::time::Duration;

use crate::delayed_lateness::Store;
use crate::table;

/// `--spread`: positive seconds, at most a day.
fn parse_spread(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err("the spread must be above 0 and at most 86400 seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

impl BenchOpt {
    /// The stores `--stores` names, in run order (every one when none).
    pub(crate) fn stores(&self) -> Vec<Store> {
        Store::ALL
            .into_iter()
            .filter(|store| self.stores.is_empty() || self.stores.iter().any(|s| s == store.name()))
            .collect()
    }
}

/// What `--help` says after the options: the scenarios, then the exit codes.
fn after_help() -> String {
    format!(
        "{}\n\
Exit codes:
  0  every scenario ran and its checks passed
  1  a check failed, or a scenario could not run (a server, the runtime)
  2  usage error: a bad option, an unknown or unavailable scenario, a server not named",
        table::scenario_help()
    )
}

/// The benchmark suite of soiree: one line of figures per scenario on
/// stdout; exits non-zero when a scenario's result is wrong.
///
/// Progress (which scenario runs, the throwaway servers it starts, the
/// events handled so far) goes to stderr.
#[derive(Debug, Parser)]
#[command(name = "soiree-bench", version, about, after_help = after_help())]
pub(crate) struct BenchOpt {
    /// Scenarios to run (default: every in-memory scenario).
    #[arg(value_name = "SCENARIO", value_parser = PossibleValuesParser::new(table::scenario_names()))]
    pub(crate) scenarios: Vec<String>,

    /// Events per scenario, instead of each scenario's default.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) n: Option<u64>,

    /// Redis server for the Redis scenarios.
    #[arg(long, value_name = "URL")]
    pub(crate) redis: Option<String>,

    /// Postgres server for the SQL scenarios (without it they start a
    /// throwaway one).
    #[arg(long, value_name = "URL")]
    pub(crate) postgres: Option<String>,

    /// delayed-lateness: the seconds its due times spread over.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_spread)]
    pub(crate) spread: Duration,

    /// delayed-lateness: the stores to run it on (default: all; PostgreSQL
    /// and Redis are skipped when no server is named or can be started,
    /// NATS when no nats-server is installed).
    #[arg(long, value_name = "STORE", value_delimiter = ',',
          value_parser = PossibleValuesParser::new(Store::ALL.map(Store::name)))]
    pub(crate) stores: Vec<String>,

    /// Print one JSON object per scenario instead of key=value lines.
    #[arg(long)]
    pub(crate) json: bool,
}
