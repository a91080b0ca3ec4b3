//! `soiree-bench`: the benchmark suite of `BENCHMARKS.md`, one line of
//! figures per scenario.

mod bus;
mod calls;
mod consumers;
mod error;
mod opt;
mod progress;
mod report;
mod rss;
mod runner;
mod scenario;
mod table;

mod delayed_lateness;
mod emit_throughput;
mod error_delivery;
mod fanout;
mod mutation_capture;
mod nats_durable;
mod nats_scale_out;
mod outbox_latency;
mod redis_durable;
mod redis_scale_out;
mod round_trip;
mod slow_listener;
mod sql_outbox;
mod sql_scale_out;
mod tx_listener;
mod wildcard;

use std::process::ExitCode;

use clap::Parser;

use crate::opt::BenchOpt;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // redis-scale-out, sql-scale-out and nats-scale-out run their consumers as this binary.
    if let Some(code) = consumer_process() {
        return code;
    }
    match runner::run(BenchOpt::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", terminal_safe(&err.to_string()));
            ExitCode::from(err.exit_code())
        }
    }
}

/// Runs this process as a scale-out consumer when started as one (by
/// redis-scale-out, sql-scale-out or nats-scale-out); `None` otherwise.
fn consumer_process() -> Option<ExitCode> {
    redis_scale_out::consumer_process()
        .or_else(sql_scale_out::consumer_process)
        .or_else(nats_scale_out::consumer_process)
}

/// `text` with control and bidi characters escaped: an error may quote what
/// a server said.
fn terminal_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            let unsafe_char = c.is_control()
                || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if unsafe_char {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
