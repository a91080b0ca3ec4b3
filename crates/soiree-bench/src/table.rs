//! The table of scenarios. Adding one is two lines: its `mod` in `main.rs`
//! and its `SCENARIO` here.

use super::scenario::{Needs, Scenario};
use super::{
    delayed_lateness, emit_throughput, error_delivery, fanout, mutation_capture, nats_durable,
    nats_scale_out, outbox_latency, redis_durable, redis_scale_out, round_trip, slow_listener,
    sql_outbox, sql_scale_out, tx_listener, wildcard,
};
use crate::error::{Error, Result};

/// Every scenario this build runs, in the order they run. emit-throughput
/// comes first so that its peak RSS is not another scenario's even where the
/// peak cannot be reset.
const SCENARIOS: &[Scenario] = &[
    emit_throughput::SCENARIO,
    round_trip::SCENARIO,
    fanout::SCENARIO,
    wildcard::SCENARIO,
    error_delivery::SCENARIO,
    slow_listener::SCENARIO,
    redis_durable::SCENARIO,
    redis_scale_out::SCENARIO,
    sql_outbox::SQL_OUTBOX,
    sql_outbox::SQLITE_DURABLE,
    outbox_latency::SCENARIO,
    sql_scale_out::SCENARIO,
    mutation_capture::SCENARIO,
    delayed_lateness::SCENARIO,
    tx_listener::SCENARIO,
    nats_durable::NATS_DURABLE,
    nats_durable::NATS_DURABLE_R3,
    nats_scale_out::SCENARIO,
];

/// Scenarios of `BENCHMARKS.md` that this build may not run yet: accepted on
/// the command line, then refused with a clear error unless the table has
/// them.
const PLANNED: &[&str] = &[
    "redis-durable",
    "redis-scale-out",
    "sql-outbox",
    "outbox-latency",
    "sql-scale-out",
];

/// Every name the command line accepts.
pub(crate) fn scenario_names() -> impl Iterator<Item = &'static str> {
    SCENARIOS.iter().map(|s| s.name).chain(planned())
}

/// The planned scenarios that the table does not hold yet.
fn planned() -> impl Iterator<Item = &'static str> {
    PLANNED
        .iter()
        .copied()
        .filter(|name| !SCENARIOS.iter().any(|s| s.name == *name))
}

/// The scenario list for `--help`.
pub(crate) fn scenario_help() -> String {
    let mut help = String::from("Scenarios:\n");
    for scenario in SCENARIOS {
        let server = match scenario.needs {
            Needs::Memory => "in memory, run by default",
            Needs::Redis => "needs --redis",
            Needs::Postgres => "--postgres URL, else a throwaway server",
            Needs::File => "a temporary file, run when named",
            Needs::Nats => "throwaway nats-server(s), run when named",
        };
        help.push_str(&format!(
            "  {:<16} n={} ({server})\n",
            scenario.name, scenario.default_n
        ));
    }
    for name in planned() {
        help.push_str(&format!("  {name:<16} (not available yet)\n"));
    }
    help
}

/// The scenarios named (every in-memory one when none is), in table order,
/// each once.
///
/// # Errors
///
/// [`Error::NotAvailable`] for a name that is not in the table.
pub(crate) fn select(names: &[String]) -> Result<Vec<&'static Scenario>> {
    if let Some(name) = names
        .iter()
        .find(|name| !SCENARIOS.iter().any(|s| s.name == *name))
    {
        return Err(Error::NotAvailable(name.clone()));
    }
    Ok(SCENARIOS
        .iter()
        .filter(|s| {
            if names.is_empty() {
                s.needs == Needs::Memory
            } else {
                names.iter().any(|name| name == s.name)
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(scenarios: &[&Scenario]) -> Vec<&'static str> {
        scenarios.iter().map(|s| s.name).collect()
    }

    #[test]
    fn no_names_selects_every_in_memory_scenario_in_table_order() {
        let selected = select(&[]).unwrap();
        assert_eq!(
            names(&selected),
            [
                "emit-throughput",
                "round-trip",
                "fanout-10",
                "wildcard-1k",
                "error-delivery",
                "slow-listener"
            ]
        );
    }

    #[test]
    fn named_scenarios_run_once_each_in_table_order() {
        let wanted = ["slow-listener", "emit-throughput", "slow-listener"].map(String::from);
        assert_eq!(
            names(&select(&wanted).unwrap()),
            ["emit-throughput", "slow-listener"]
        );
    }

    #[test]
    fn a_planned_scenario_is_not_available() {
        // Nothing to refuse once every planned scenario is in the table.
        let Some(planned) = planned().next() else {
            return;
        };
        let err = select(&["round-trip".into(), planned.into()]).unwrap_err();
        assert!(matches!(err, Error::NotAvailable(name) if name == planned));
    }

    #[test]
    fn names_are_unique_and_listed_in_help() {
        let all: Vec<&str> = scenario_names().collect();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
        let help = scenario_help();
        assert!(all.iter().all(|name| help.contains(name)), "{help}");
    }
}
