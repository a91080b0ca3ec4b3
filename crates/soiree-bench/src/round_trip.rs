//! round-trip: one no-op listener; each emission awaited before the next.

use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};

use super::bus::fresh_bus;
use super::calls::Calls;
use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use crate::error::Result;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "round-trip",
    default_n: 100_000,
    needs: Needs::Memory,
    run: |setup| run(setup).boxed(),
};

const TOPIC: &str = "user.created";

async fn run(setup: Setup) -> Result<Report> {
    let bus = fresh_bus()?;
    let calls = Calls::default();
    bus.on(TOPIC, calls.listener())?;

    let mut latencies = Vec::with_capacity(usize::try_from(setup.n).unwrap_or(0));
    let mut errors = 0;
    let start = Instant::now();
    // One clock read per emit: each one ends an emit and starts the next.
    let mut sent = start;
    for i in 0..setup.n {
        errors += bus.emit(TOPIC, i).count().await;
        let done = Instant::now();
        latencies.push(done - sent);
        sent = done;
    }
    let elapsed = sent - start;
    bus.close().await?;

    latencies.sort_unstable();
    let micros = |q| percentile(&latencies, q).as_secs_f64() * 1e6;
    let calls = calls.get();
    Ok(Report::new(&setup, elapsed, setup.n)
        .figure("p50_us", micros(50), 1)
        .figure("p99_us", micros(99), 1)
        .check(calls == setup.n, || {
            format!("the listener ran {calls} times for {} events", setup.n)
        })
        .check(errors == 0, || format!("{errors} emissions yielded errors")))
}

/// The nearest-rank `q`th percentile of sorted durations.
fn percentile(sorted: &[Duration], q: usize) -> Duration {
    let rank = (sorted.len() * q).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&sorted, 50), Duration::from_micros(50));
        assert_eq!(percentile(&sorted, 99), Duration::from_micros(99));
        assert_eq!(percentile(&sorted[..1], 99), Duration::from_micros(1));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }
}
