//! sql-scale-out: sql-outbox with three consumer processes sharing one
//! consumer group on PostgreSQL; this process only emits (transactions of
//! 100 from 4 concurrent tasks).
//!
//! The consumers are this binary again, started with
//! `SOIREE_BENCH_SQL_CONSUMER` set (see [`consumer_process`]): each says
//! `ready` once its listener is registered, and when its stdin closes it
//! stops and prints the event ids it handled, one per line. Timed from the
//! first emit until the group's backlog is empty; checked: every event id
//! handled exactly once over all consumers.

use std::time::Instant;

use futures::FutureExt;
use soiree::{EventBus, EventQueue, MetricsRegistry};
use soiree_sql::PostgresStore;

use super::consumers::{self, Consumers, failed};
use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use super::sql_outbox::{Outbox, TOPIC, emit_all, in_bench_schema, store_error};
use crate::error::Result;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "sql-scale-out",
    default_n: 50_000,
    needs: Needs::Postgres,
    run: |setup| run(setup).boxed(),
};

const CONSUMER_ENV: &str = "SOIREE_BENCH_SQL_CONSUMER";
const URL_ENV: &str = "SOIREE_BENCH_POSTGRES";
const SCHEMA_ENV: &str = "SOIREE_BENCH_SCHEMA";

async fn run(setup: Setup) -> Result<Report> {
    let url = setup.postgres.clone().unwrap_or_default();
    in_bench_schema(&url, |store| measure(&setup, store, &url)).await
}

async fn measure(setup: &Setup, store: PostgresStore, url: &str) -> Result<Report> {
    let schema = store.schema();
    let mut consumers = Consumers::start(CONSUMER_ENV, &[(URL_ENV, url), (SCHEMA_ENV, schema)])?;

    let n = setup.n;
    let outbox = Outbox::Postgres(store.clone());
    let start = Instant::now();
    emit_all(setup, outbox).await?;
    let emitted = start.elapsed();
    let elapsed = consumers::until_drained(&store, start).await?;
    let backlog = store.backlog().await?;

    let handled = consumers.collect()?;
    let report = Report::new(setup, elapsed, n).figure("emit_seconds", emitted.as_secs_f64(), 4);
    Ok(consumers::check_drained(report, &handled, n, backlog))
}

/// Runs this process as a sql-scale-out consumer when started as one;
/// `None` otherwise.
pub(crate) fn consumer_process() -> Option<std::process::ExitCode> {
    consumers::run_as_consumer(CONSUMER_ENV, consume)
}

async fn consume(name: String) -> Result<()> {
    let url = std::env::var(URL_ENV).map_err(failed)?;
    let schema = std::env::var(SCHEMA_ENV).map_err(failed)?;
    let store = PostgresStore::builder(&url)
        .schema(schema)
        .consumer(name)
        .metrics_registry(MetricsRegistry::new())
        .build()
        .await
        .map_err(store_error)?;
    let bus = EventBus::builder()
        .store(store)
        .metrics_registry(MetricsRegistry::new())
        .build()?;
    let (handled, listener) = consumers::recorder();
    bus.on_named("bench", TOPIC, listener)?;
    bus.start()?;
    consumers::serve(bus, handled).await
}
