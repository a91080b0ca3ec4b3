//! fanout-10: ten no-op listeners on one topic; N events fire-and-forget,
//! then idle. The rate counts listener invocations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::FutureExt;

use super::bus::fresh_bus;
use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use crate::error::Result;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "fanout-10",
    default_n: 200_000,
    needs: Needs::Memory,
    run: |setup| run(setup).boxed(),
};

const TOPIC: &str = "order.placed";
const LISTENERS: u64 = 10;

async fn run(setup: Setup) -> Result<Report> {
    let bus = fresh_bus()?;
    let calls = Arc::new(AtomicU64::new(0));
    for _ in 0..LISTENERS {
        let counter = Arc::clone(&calls);
        bus.on(TOPIC, move |_ctx| {
            counter.fetch_add(1, Ordering::Relaxed);
            async { Ok(()) }
        })?;
    }

    let start = Instant::now();
    for i in 0..setup.n {
        bus.emit(TOPIC, i).detach();
    }
    bus.wait_for_idle().await;
    let elapsed = start.elapsed();
    bus.close().await?;

    let expected = setup.n * LISTENERS;
    let calls = calls.load(Ordering::Relaxed);
    Ok(Report::new(&setup, elapsed, expected)
        .count("invocations", calls)
        .check(calls == expected, || {
            format!("{calls} listener invocations, expected {expected}")
        }))
}
