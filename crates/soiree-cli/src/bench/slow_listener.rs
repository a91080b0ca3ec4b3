//! slow-listener: a listener that sleeps 1 ms; N events fire-and-forget on 10
//! workers, then idle. Ideally N / 10 ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;

use super::bus::fresh_bus;
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
    let calls = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&calls);
    bus.on(TOPIC, move |_ctx| {
        let counter = Arc::clone(&counter);
        async move {
            tokio::time::sleep(NAP).await;
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    })?;

    let start = Instant::now();
    for i in 0..setup.n {
        bus.emit(TOPIC, i).detach();
    }
    bus.wait_for_idle().await;
    let elapsed = start.elapsed();
    bus.close().await?;

    let calls = calls.load(Ordering::Relaxed);
    Ok(
        Report::new(&setup, elapsed, setup.n).check(calls == setup.n, || {
            format!("the listener finished {calls} times for {} events", setup.n)
        }),
    )
}
