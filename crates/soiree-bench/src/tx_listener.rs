//! tx-listener: sql-outbox with a transactional listener (`on_tx`) in place
//! of the plain one: each event's listener runs in a transaction of its own
//! that inserts one row, checks the lease's fencing token and records its
//! success, then commits. Timed from the first emit until every event is
//! handled; the difference from sql-outbox is the cost of effectively once.

use std::sync::Arc;

use futures::FutureExt;
use soiree::{EventBus, EventQueue, MetricsRegistry};
use soiree_sql::PostgresStore;
use sqlx::AssertSqlSafe;

use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use super::sql_outbox::{Handled, Outbox, TOPIC, emit_and_drain, in_bench_schema, store_error};
use crate::error::Result;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "tx-listener",
    default_n: 20_000,
    needs: Needs::Postgres,
    run: |setup| run(setup).boxed(),
};

async fn run(setup: Setup) -> Result<Report> {
    let url = setup.postgres.clone().unwrap_or_default();
    in_bench_schema(&url, |store| measure(&setup, store)).await
}

async fn measure(setup: &Setup, store: PostgresStore) -> Result<Report> {
    let n = setup.n;
    let table = format!("\"{}\".bench_effects", store.schema());
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE {table} (event_id text NOT NULL)"
    )))
    .execute(store.pool())
    .await
    .map_err(|err| store_error(err.into()))?;
    let bus = EventBus::builder()
        .store(store.clone())
        .pool_name("bench")
        .metrics_registry(MetricsRegistry::new())
        .build()?;
    let handled = Arc::new(Handled::new(n));
    let recorder = Arc::clone(&handled);
    let insert: Arc<str> = format!("INSERT INTO {table} (event_id) VALUES ($1)").into();
    store.on_tx(&bus, "bench", TOPIC, move |ctx, mut tx| {
        let (recorder, insert) = (Arc::clone(&recorder), Arc::clone(&insert));
        async move {
            let id = ctx.event_id().unwrap_or_default();
            sqlx::query(AssertSqlSafe(insert.to_string()))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            recorder.record(id);
            Ok(tx)
        }
    })?;
    bus.start()?;
    let outbox = Outbox::Postgres(store.clone());
    let drained = emit_and_drain(setup, outbox, &bus, &handled).await?;
    let finished = drained.finished;

    let (distinct, runs) = handled.counts();
    let backlog = store.backlog().await?;
    let rows: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(store.pool())
        .await
        .map_err(|err| store_error(err.into()))?;
    let rows = u64::try_from(rows).unwrap_or_default();
    Ok(Report::new(setup, drained.elapsed, n)
        .figure("emit_seconds", drained.emitted.as_secs_f64(), 4)
        .count("handled", distinct)
        .count("runs", runs)
        .count("rows", rows)
        .count("backlog", backlog)
        .check(finished, || {
            format!("only {distinct} of {n} events handled in time")
        })
        .check(rows == n, || format!("{n} events: {rows} rows committed"))
        .check(backlog == 0, || format!("{backlog} events left pending")))
}
