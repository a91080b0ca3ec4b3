//! outbox-latency: on PostgreSQL and on SQLite, 2,000 events emitted one per
//! transaction, one at a time; for each, the time from the commit to the
//! listener starting. Reported per store: `pg_p50_ms=`, `pg_p99_ms=`,
//! `sqlite_p50_ms=`, `sqlite_p99_ms=` (one line for the scenario), timed
//! from the moment the commit returned, as the LISTEN/NOTIFY probe times
//! from its committed insert (0 when the listener started before the
//! emitting task saw its commit return); and `pg_commit_p50_ms=` …, the
//! commit call itself (the server's WAL flush), which the earlier figures
//! (to stop 26) included.

use std::time::{Duration, Instant};

use futures::FutureExt;
use soiree::{EventBus, MetricsRegistry};
use tokio::sync::mpsc;

use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use super::sql_outbox::{Outbox, in_bench_schema, in_temp_sqlite, store_error};
use crate::error::{Error, Result};

pub(super) const SCENARIO: Scenario = Scenario {
    name: "outbox-latency",
    default_n: 2_000,
    needs: Needs::Postgres,
    run: |setup| run(setup).boxed(),
};

const TOPIC: &str = "order.paid";
/// The longest one event may take to reach its listener.
const LIMIT: Duration = Duration::from_secs(30);

async fn run(setup: Setup) -> Result<Report> {
    let start = Instant::now();
    let url = setup.postgres.clone().unwrap_or_default();
    let (pg_latencies, pg_commits) =
        in_bench_schema(&url, |pg| latencies(&setup, Outbox::Postgres(pg))).await?;
    let (sqlite_latencies, sqlite_commits) = in_temp_sqlite("latency", |sqlite| {
        latencies(&setup, Outbox::Sqlite(sqlite))
    })
    .await?;

    let n = setup.n;
    Ok(Report::new(&setup, start.elapsed(), 2 * n)
        .figure("pg_p50_ms", percentile(&pg_latencies, 50), 3)
        .figure("pg_p99_ms", percentile(&pg_latencies, 99), 3)
        .figure("pg_commit_p50_ms", percentile(&pg_commits, 50), 3)
        .figure("pg_commit_p99_ms", percentile(&pg_commits, 99), 3)
        .figure("sqlite_p50_ms", percentile(&sqlite_latencies, 50), 3)
        .figure("sqlite_p99_ms", percentile(&sqlite_latencies, 99), 3)
        .figure("sqlite_commit_p50_ms", percentile(&sqlite_commits, 50), 3)
        .figure("sqlite_commit_p99_ms", percentile(&sqlite_commits, 99), 3)
        .check(pg_latencies.len() as u64 == n, || {
            format!(
                "postgres: {} of {n} events reached the listener",
                pg_latencies.len()
            )
        })
        .check(sqlite_latencies.len() as u64 == n, || {
            format!(
                "sqlite: {} of {n} events reached the listener",
                sqlite_latencies.len()
            )
        }))
}

/// Emits `setup.n` events one per transaction, each after the previous one
/// reached the listener; returns the commit → listener start times and
/// the commit calls' own times.
async fn latencies(setup: &Setup, store: Outbox) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let bus = EventBus::builder()
        .shared_store(store.shared())
        .pool_name("bench")
        .metrics_registry(MetricsRegistry::new())
        .build()?;
    let (started, mut starts) = mpsc::unbounded_channel::<(u64, Instant)>();
    bus.on_named("bench", TOPIC, move |ctx| {
        let at = Instant::now();
        let n = ctx.payload().decode::<u64>().unwrap_or(u64::MAX);
        let _ = started.send((n, at));
        futures::future::ready(Ok(()))
    })?;
    bus.start()?;
    let mut out = Vec::with_capacity(usize::try_from(setup.n).unwrap_or(0));
    let mut commits = Vec::with_capacity(out.capacity());
    for i in 0..setup.n {
        let committed = store.emit_one(TOPIC, i).await.map_err(store_error)?;
        let reached = loop {
            match tokio::time::timeout(LIMIT, starts.recv()).await {
                Ok(Some((n, at))) if n == i => break at,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    return Err(Error::Aborted {
                        scenario: setup.scenario,
                        reason: format!("event {i} did not reach its listener within {LIMIT:?}"),
                    });
                }
            }
        };
        out.push(reached.saturating_duration_since(committed.done));
        commits.push(committed.done - committed.called);
    }
    bus.wait_for_idle().await;
    bus.close().await?;
    Ok((out, commits))
}

/// The `p`-th percentile in milliseconds.
fn percentile(values: &[Duration], p: usize) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let index = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[index].as_secs_f64() * 1000.0
}
