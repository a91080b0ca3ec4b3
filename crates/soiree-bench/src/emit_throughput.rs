//! emit-throughput: one no-op listener; N small events emitted with the
//! backpressured `emit_async` without awaiting their emissions, then
//! `wait_for_idle`. Besides the peak RSS it
//! reports `backlog=`, the events not yet handled when the last emit
//! returned.

use std::time::Instant;

use futures::FutureExt;

use super::bus::fresh_bus;
use super::calls::Calls;
use super::report::Report;
use super::rss;
use super::scenario::{Needs, Scenario, Setup};
use crate::error::Result;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "emit-throughput",
    default_n: 1_000_000,
    needs: Needs::Memory,
    run: |setup| run(setup).boxed(),
};

const TOPIC: &str = "user.created";

async fn run(setup: Setup) -> Result<Report> {
    rss::reset_peak();
    let bus = fresh_bus()?;
    let calls = Calls::default();
    bus.on(TOPIC, calls.listener())?;

    let start = Instant::now();
    for i in 0..setup.n {
        bus.emit_async(TOPIC, i).await.detach();
    }
    // Events still waiting when the last emit returns: what the peak RSS
    // pays for when the pool falls behind the emitter.
    let backlog = setup.n.saturating_sub(calls.get());
    bus.wait_for_idle().await;
    let elapsed = start.elapsed();
    bus.close().await?;

    let calls = calls.get();
    let report = Report::new(&setup, elapsed, setup.n);
    let report = match rss::peak_rss_mb() {
        Some(mb) => report.figure("peak_rss_mb", mb, 1),
        None => report,
    };
    Ok(report
        .count("backlog", backlog)
        .check(calls == setup.n, || {
            format!("the listener ran {calls} times for {} events", setup.n)
        }))
}
