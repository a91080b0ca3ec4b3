//! nats-scale-out: nats-durable (one throwaway nats-server) with three
//! consumer processes of one consumer group; this process only emits.
//!
//! The consumers are this binary again, started with
//! `SOIREE_BENCH_NATS_CONSUMER` set (see [`consumer_process`]): each opens
//! the same store (prefix and group) and says `ready` once its listener is
//! registered; when its stdin closes it stops and prints the event ids it
//! handled, one per line. Timed from the first emit until the group has
//! nothing undelivered or unacknowledged; checked: every event id handled
//! exactly once over all consumers, nothing left pending.

use std::time::Duration;

use futures::FutureExt;
use soiree::{EventBus, EventQueue, MetricsRegistry};
use soiree_nats::NatsStore;

use super::consumers::{self, Consumers, failed};
use super::redis_durable::REDIS_WORKERS;
use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use crate::error::{Error, Result};

pub(super) const SCENARIO: Scenario = Scenario {
    name: "nats-scale-out",
    default_n: 20_000,
    needs: Needs::Nats,
    run: |setup| run(setup).boxed(),
};

const TOPIC: &str = "user.created";
const PREFIX: &str = "bench";
const GROUP: &str = "scale-out";
/// Set (to the consumer's name) in the consumer processes' environment.
const CONSUMER_ENV: &str = "SOIREE_BENCH_NATS_CONSUMER";
const URL_ENV: &str = "SOIREE_BENCH_NATS";

fn store_error(err: soiree_nats::Error) -> Error {
    Error::Bus(err.into())
}

async fn open(url: &str) -> Result<NatsStore> {
    NatsStore::builder(url)
        .prefix(PREFIX)
        .group(GROUP)
        .metrics_registry(MetricsRegistry::new())
        .build()
        .await
        .map_err(store_error)
}

async fn run(setup: Setup) -> Result<Report> {
    // The server lives as long as the run; starting it blocks.
    let server = tokio::task::spawn_blocking(soiree_test::nats::NatsServer::start)
        .await
        .map_err(failed)?
        .map_err(failed)?;
    let url = server.url();
    // The stream and the group exist before the consumers open them.
    let store = open(&url).await?;
    let mut consumers = Consumers::start(CONSUMER_ENV, &[(URL_ENV, &url)])?;

    let elapsed = consumers::emit_and_drain(&store, REDIS_WORKERS, TOPIC, setup.n).await?;
    let backlog = store.backlog().await?;

    // Stop the consumers and collect what each handled.
    let handled = consumers.collect()?;
    let report = Report::new(&setup, elapsed, setup.n).count("workers", REDIS_WORKERS as u64);
    Ok(consumers::check_drained(report, &handled, setup.n, backlog))
}

/// Runs this process as a nats-scale-out consumer when started as one;
/// `None` otherwise.
pub(crate) fn consumer_process() -> Option<std::process::ExitCode> {
    consumers::run_as_consumer(CONSUMER_ENV, consume)
}

async fn consume(_name: String) -> Result<()> {
    let url = std::env::var(URL_ENV).map_err(failed)?;
    let store = open(&url).await?;
    let bus = EventBus::builder()
        .store(store)
        .workers(REDIS_WORKERS)
        .poll_wait(Duration::from_millis(100))
        .metrics_registry(MetricsRegistry::new())
        .build()?;
    let (handled, listener) = consumers::recorder();
    bus.on_named("bench", TOPIC, listener)?;
    bus.start()?;
    consumers::serve(bus, handled).await
}
