//! redis-scale-out: the redis-durable setup with three consumer processes
//! sharing one consumer group; this process only emits.
//!
//! The consumers are this binary again, started with `SOIREE_BENCH_CONSUMER`
//! set (see [`consumer_process`]): each says `ready` on stdout once its
//! listener is registered, and when its stdin closes it stops and prints
//! the event ids it handled, one per line. Timed from the first emit until
//! the group has nothing undelivered or pending; checked: every event id
//! handled exactly once over all consumers.

use std::time::Duration;

use futures::FutureExt;
use soiree::{EventBus, EventQueue, MetricsRegistry};
use soiree_redis::RedisStore;

use super::consumers::{self, Consumers, failed};
use super::redis_durable::{REDIS_WORKERS, connect};
use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use crate::error::{Error, Result};

pub(super) const SCENARIO: Scenario = Scenario {
    name: "redis-scale-out",
    default_n: 50_000,
    needs: Needs::Redis,
    run: |setup| run(setup).boxed(),
};

const TOPIC: &str = "user.created";
/// Set (to the consumer's name) in the consumer processes' environment.
const CONSUMER_ENV: &str = "SOIREE_BENCH_CONSUMER";
const URL_ENV: &str = "SOIREE_BENCH_REDIS";
const PREFIX_ENV: &str = "SOIREE_BENCH_PREFIX";

async fn run(setup: Setup) -> Result<Report> {
    let store = connect(&setup, "scale-out").await?;
    let url = setup
        .redis
        .clone()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let prefix = store.prefix().to_owned();
    let mut consumers = Consumers::start(CONSUMER_ENV, &[(URL_ENV, &url), (PREFIX_ENV, &prefix)])?;

    let elapsed = consumers::emit_and_drain(&store, REDIS_WORKERS, TOPIC, setup.n).await?;
    let backlog = store.backlog().await?;

    // Stop the consumers and collect what each handled.
    let handled = consumers.collect();
    let _ = store.purge().await;
    let report = Report::new(&setup, elapsed, setup.n).count("workers", REDIS_WORKERS as u64);
    Ok(consumers::check_drained(
        report, &handled?, setup.n, backlog,
    ))
}

/// Runs this process as a scale-out consumer when started as one; `None`
/// otherwise.
pub(crate) fn consumer_process() -> Option<std::process::ExitCode> {
    consumers::run_as_consumer(CONSUMER_ENV, consume)
}

async fn consume(name: String) -> Result<()> {
    let url = std::env::var(URL_ENV).map_err(failed)?;
    let prefix = std::env::var(PREFIX_ENV).map_err(failed)?;
    let store = RedisStore::builder(&url)
        .prefix(prefix)
        .consumer(name)
        .metrics_registry(MetricsRegistry::new())
        .build()
        .await
        .map_err(|err| Error::Bus(err.into()))?;
    let bus = EventBus::builder()
        .store(store)
        .workers(REDIS_WORKERS)
        .poll_wait(Duration::from_millis(100))
        .metrics_registry(MetricsRegistry::new())
        .build()?;
    let (handled, listener) = consumers::recorder();
    bus.on(TOPIC, listener)?;
    bus.start()?;
    consumers::serve(bus, handled).await
}
