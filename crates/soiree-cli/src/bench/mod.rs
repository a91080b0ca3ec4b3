//! `soiree bench`: the benchmark suite of `BENCHMARKS.md`.

mod bus;
mod calls;
mod consumers;
mod progress;
mod report;
mod rss;
mod runner;
mod scenario;
mod table;

mod emit_throughput;
mod error_delivery;
mod fanout;
mod mutation_capture;
mod outbox_latency;
mod redis_durable;
mod redis_scale_out;
mod round_trip;
mod slow_listener;
mod sql_outbox;
mod sql_scale_out;
mod wildcard;

/// Runs this process as a scale-out consumer when started as one (by
/// redis-scale-out or sql-scale-out); `None` otherwise.
pub(crate) fn consumer_process() -> Option<std::process::ExitCode> {
    redis_scale_out::consumer_process().or_else(sql_scale_out::consumer_process)
}
pub(crate) use runner::run;
pub(crate) use table::{scenario_help, scenario_names};
