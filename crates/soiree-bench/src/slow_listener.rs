//! slow-listener: a listener that sleeps 1 ms; N events fire-and-forget on 10
//! workers, then idle. Ideally N / 10 ms.
//!
//! tokio's timer wakes on whole milliseconds after the deadline, so a 1 ms
//! sleep takes about 2 ms: `sleep_ms=` reports the mean sleep the listener
//! actually got, to tell the bus's overhead from the timer's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;

use super::bus::{emit_until_idle, fresh_bus};
use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use crate::error::Result;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "slow-listener",
    default_n: 5_000,
    needs: Needs::Memory,
    run: |setup| run(setup).boxed(),
};

const TOPIC: &str = "report.requested";
const NAP: Duration = Duration::from_millis(1);

async fn run(setup: Setup) -> Result<Report> {
    let bus = fresh_bus()?;
    let tally = Arc::new(Tally::default());
    let listener_tally = Arc::clone(&tally);
    bus.on(TOPIC, move |_ctx| {
        let tally = Arc::clone(&listener_tally);
        async move {
            let start = Instant::now();
            tokio::time::sleep(NAP).await;
            tally.record(start.elapsed());
            Ok(())
        }
    })?;

    let elapsed = emit_until_idle(bus, TOPIC, setup.n).await?;

    let calls = tally.calls.load(Ordering::Relaxed);
    let slept = Duration::from_nanos(tally.nanos.load(Ordering::Relaxed));
    let mean_sleep = slept.as_secs_f64() * 1e3 / calls.max(1) as f64;
    Ok(Report::new(&setup, elapsed, setup.n)
        .figure("sleep_ms", mean_sleep, 3)
        .check(calls == setup.n, || {
            format!("the listener finished {calls} times for {} events", setup.n)
        }))
}

/// The listener's finished calls and the time they spent asleep.
#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl Tally {
    fn record(&self, slept: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(slept.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}
