//! fanout-10: ten no-op listeners on one topic; N events fire-and-forget,
//! then idle. The rate counts listener invocations.

use futures::FutureExt;

use super::bus::{emit_until_idle, fresh_bus};
use super::calls::Calls;
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
    let calls = Calls::default();
    for _ in 0..LISTENERS {
        bus.on(TOPIC, calls.listener())?;
    }

    let elapsed = emit_until_idle(bus, TOPIC, setup.n).await?;

    let expected = setup.n * LISTENERS;
    let calls = calls.get();
    Ok(Report::new(&setup, elapsed, expected)
        .count("invocations", calls)
        .check(calls == expected, || {
            format!("{calls} listener invocations, expected {expected}")
        }))
}
