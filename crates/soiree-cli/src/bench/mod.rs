//! `soiree bench`: the benchmark suite of `BENCHMARKS.md`.

mod bus;
mod calls;
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
mod redis_durable;
mod redis_scale_out;
mod round_trip;
mod slow_listener;
mod sql_outbox;
mod wildcard;

pub(crate) use redis_scale_out::consumer_process;
pub(crate) use runner::run;
pub(crate) use table::{scenario_help, scenario_names};
