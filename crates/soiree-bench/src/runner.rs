//! Runs the selected scenarios and prints their reports.

use std::process::ExitCode;

use super::progress::{self, Progress};
use super::scenario::{Needs, Setup};
use super::table;
use crate::error::{Error, Result};
use crate::opt::BenchOpt;

/// Runs the benchmark: exit code 0 when every check passed, 1 otherwise.
///
/// # Errors
///
/// A scenario that is not available or lacks its server (before anything
/// runs), a runtime that cannot start, a scenario that panics.
pub(crate) fn run(opt: BenchOpt) -> Result<ExitCode> {
    let scenarios = table::select(&opt.scenarios)?;
    let setups = scenarios
        .iter()
        .map(|scenario| {
            let setup = Setup {
                scenario: scenario.name,
                n: opt.n.unwrap_or(scenario.default_n),
                redis: opt.redis.clone(),
                postgres: opt.postgres.clone(),
                spread: opt.spread,
                stores: opt.stores(),
            };
            setup.validate(scenario.needs).map(|()| setup)
        })
        .collect::<Result<Vec<_>>>()?;
    // SQL scenarios without --postgres get a throwaway server, as the tests
    // do (initdb into a temporary directory, a free loopback port), removed
    // when the run ends; without PostgreSQL installed they are skipped.
    let mut server = None;
    let mut scenarios = scenarios;
    let mut setups = setups;
    if opt.postgres.is_none() && scenarios.iter().any(|s| s.needs == Needs::Postgres) {
        match start_postgres() {
            Ok(started) => {
                for setup in &mut setups {
                    setup.postgres = Some(started.url());
                }
                server = Some(started);
            }
            Err(err) => {
                eprintln!(
                    "no --postgres URL and no throwaway PostgreSQL ({err}): skipping the PostgreSQL scenarios"
                );
                let keep: Vec<bool> = scenarios
                    .iter()
                    .map(|s| s.needs != Needs::Postgres)
                    .collect();
                let mut flags = keep.iter();
                scenarios.retain(|_| *flags.next().unwrap_or(&false));
                let mut flags = keep.iter();
                setups.retain(|_| *flags.next().unwrap_or(&false));
            }
        }
    }

    // Two workers: the machine's cores, as a tokio service would have them.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let progress = Progress::new(scenarios.len());
    let mut passed = true;
    for (index, (scenario, setup)) in scenarios.iter().zip(setups).enumerate() {
        progress.start(index, scenario.name);
        // Spawned, so the scenario runs on a worker thread as a service's
        // tasks do; from the block_on thread every await that waits would
        // cost a thread park and unpark.
        let report = match runtime.block_on(runtime.spawn((scenario.run)(setup))) {
            Ok(Ok(report)) => report,
            Ok(Err(err)) => {
                progress.finish();
                return Err(err);
            }
            Err(err) => {
                progress.finish();
                return Err(Error::Aborted {
                    scenario: scenario.name,
                    reason: err.to_string(),
                });
            }
        };
        progress.output(&if opt.json {
            report.json()
        } else {
            report.line()
        });
        for failure in report.failures() {
            progress.warn(&format!("check failed: {}: {failure}", scenario.name));
            passed = false;
        }
    }
    progress.finish();
    drop(server);
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Starts a throwaway PostgreSQL, saying so: initdb takes seconds to tens of
/// seconds on a busy host.
///
/// # Errors
///
/// PostgreSQL not installed, initdb or the server failing to start.
pub(crate) fn start_postgres() -> std::io::Result<soiree_test::postgres::PostgresServer> {
    progress::say("starting a throwaway PostgreSQL (initdb into a temporary directory) …");
    let start = std::time::Instant::now();
    let server = soiree_test::postgres::PostgresServer::start()?;
    progress::say(&format!(
        "throwaway PostgreSQL ready on 127.0.0.1:{} after {:.1} s",
        server.port(),
        start.elapsed().as_secs_f64()
    ));
    Ok(server)
}
