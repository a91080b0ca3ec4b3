//! error-delivery: twenty listeners on one topic, each failing; every
//! emission drained. No error may be lost.

use std::time::Instant;

use futures::{FutureExt, StreamExt};
use soiree::{Emission, Error as BusError};

use super::bus::fresh_bus;
use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use crate::error::Result;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "error-delivery",
    default_n: 1_000,
    needs: Needs::Memory,
    run: |setup| run(setup).boxed(),
};

const TOPIC: &str = "payment.failed";
const LISTENERS: u64 = 20;

async fn run(setup: Setup) -> Result<Report> {
    let bus = fresh_bus()?;
    for _ in 0..LISTENERS {
        bus.on(TOPIC, |_ctx| async { Err("declined".into()) })?;
    }

    let start = Instant::now();
    let emissions: Vec<Emission> = (0..setup.n).map(|i| bus.emit(TOPIC, i)).collect();
    let drained = futures::future::join_all(emissions.into_iter().map(drain)).await;
    let elapsed = start.elapsed();
    bus.close().await?;

    let errors: u64 = drained.iter().map(|d| d.listener_errors).sum();
    let others: u64 = drained.iter().map(|d| d.other_errors).sum();
    let short = drained
        .iter()
        .filter(|d| d.listener_errors != LISTENERS)
        .count();
    let expected = setup.n * LISTENERS;
    Ok(Report::new(&setup, elapsed, setup.n)
        .count("errors", errors)
        .check(errors == expected, || {
            format!("{errors} listener errors delivered, expected {expected}")
        })
        .check(short == 0, || {
            format!("{short} emissions did not yield one error per listener")
        })
        .check(others == 0, || format!("{others} errors of another kind")))
}

/// What one emission yielded.
struct Drained {
    listener_errors: u64,
    other_errors: u64,
}

async fn drain(emission: Emission) -> Drained {
    emission
        .fold(
            Drained {
                listener_errors: 0,
                other_errors: 0,
            },
            |mut drained, error| async move {
                match error {
                    BusError::Listener { .. } => drained.listener_errors += 1,
                    _ => drained.other_errors += 1,
                }
                drained
            },
        )
        .await
}
