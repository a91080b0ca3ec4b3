//! sql-outbox and sqlite-durable: the SQL outbox stores with the bus's
//! default options and one named, counting listener; N events emitted with
//! `emit_all_in` inside transactions of 100 from 4 concurrent tasks, timed
//! from the first emit until every event is handled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use soiree::{EventBus, EventQueue, EventStore, MetricsRegistry};
use soiree_sql::{PostgresStore, SqliteStore};
use tokio::sync::Notify;

use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use crate::error::{Error, Result};

pub(super) const SQL_OUTBOX: Scenario = Scenario {
    name: "sql-outbox",
    default_n: 50_000,
    needs: Needs::Postgres,
    run: |setup| run_postgres(setup).boxed(),
};

pub(super) const SQLITE_DURABLE: Scenario = Scenario {
    name: "sqlite-durable",
    default_n: 50_000,
    needs: Needs::File,
    run: |setup| run_sqlite(setup).boxed(),
};

/// The topic of the SQL scenarios' events.
pub(super) const TOPIC: &str = "order.paid";
const PRODUCERS: u64 = 4;
const PER_TX: u64 = 100;
/// The longest a run may take before it is reported as failed.
const LIMIT: Duration = Duration::from_secs(600);

pub(super) fn store_error(err: soiree_sql::Error) -> Error {
    Error::Bus(err.into())
}

/// Event ids handled, with how often; wakes the waiter once `n` distinct
/// ids were handled.
#[derive(Debug)]
pub(super) struct Handled {
    ids: Mutex<HashMap<String, u32>>,
    done: Notify,
    n: u64,
}

impl Handled {
    pub(super) fn new(n: u64) -> Self {
        Self {
            ids: Mutex::default(),
            done: Notify::new(),
            n,
        }
    }

    /// Counts a run of a listener on this event id.
    pub(super) fn record(&self, id: String) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        *ids.entry(id).or_default() += 1;
        if ids.len() as u64 >= self.n {
            self.done.notify_one();
        }
    }

    fn distinct(&self) -> u64 {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    /// Waits up to [`LIMIT`] until every id was handled; reports whether
    /// they were.
    pub(super) async fn wait_for_all(&self) -> bool {
        let all = async {
            loop {
                let waiting = self.done.notified();
                if self.distinct() >= self.n {
                    return;
                }
                waiting.await;
            }
        };
        tokio::time::timeout(LIMIT, all).await.is_ok()
    }

    /// How many distinct ids were handled, in how many runs.
    pub(super) fn counts(&self) -> (u64, u64) {
        let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        let runs = ids.values().map(|&c| u64::from(c)).sum();
        (ids.len() as u64, runs)
    }
}

/// Writes items `0..n` from [`PRODUCERS`] concurrent tasks, [`PER_TX`] per
/// call of `write` (one transaction each), and waits for all of them.
pub(super) async fn produce<F, Fut>(setup: &Setup, write: F) -> Result<()>
where
    F: Fn(Vec<u64>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = soiree_sql::Result<()>> + Send,
{
    let n = setup.n;
    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let write = write.clone();
        producers.push(tokio::spawn(async move {
            let mine: Vec<u64> = (0..n).filter(|i| i % PRODUCERS == producer).collect();
            for chunk in mine.chunks(PER_TX as usize) {
                write(chunk.to_vec()).await?;
            }
            Ok::<_, soiree_sql::Error>(())
        }));
    }
    for producer in producers {
        producer
            .await
            .map_err(|err| Error::Aborted {
                scenario: setup.scenario,
                reason: err.to_string(),
            })?
            .map_err(store_error)?;
    }
    Ok(())
}

/// When one transaction's commit was called and when it returned.
#[derive(Debug, Clone, Copy)]
pub(super) struct Committed {
    pub(super) called: Instant,
    pub(super) done: Instant,
}

/// The store under test, and how to emit one transaction's events into it.
#[derive(Debug, Clone)]
pub(super) enum Outbox {
    Postgres(PostgresStore),
    Sqlite(SqliteStore),
}

impl Outbox {
    /// Emits one event in a transaction of its own; returns when the
    /// commit was called.
    pub(super) async fn emit_one(
        &self,
        topic: &'static str,
        n: u64,
    ) -> soiree_sql::Result<Committed> {
        match self {
            Outbox::Postgres(store) => {
                let mut tx = store.begin().await?;
                store.emit_in(&mut tx, topic, n).await?;
                let called = Instant::now();
                store.commit(tx).await?;
                Ok(Committed {
                    called,
                    done: Instant::now(),
                })
            }
            Outbox::Sqlite(store) => {
                let mut tx = store.begin().await?;
                store.emit_in(&mut tx, topic, n).await?;
                let called = Instant::now();
                store.commit(tx).await?;
                Ok(Committed {
                    called,
                    done: Instant::now(),
                })
            }
        }
    }

    pub(super) async fn emit_batch(
        &self,
        batch: Vec<(&'static str, u64)>,
    ) -> soiree_sql::Result<()> {
        match self {
            Outbox::Postgres(store) => {
                let mut tx = store.begin().await?;
                store.emit_all_in(&mut tx, batch).await?;
                store.commit(tx).await
            }
            Outbox::Sqlite(store) => {
                let mut tx = store.begin().await?;
                store.emit_all_in(&mut tx, batch).await?;
                store.commit(tx).await
            }
        }
    }

    pub(super) fn queue(&self) -> &dyn EventQueue {
        match self {
            Outbox::Postgres(store) => store,
            Outbox::Sqlite(store) => store,
        }
    }

    pub(super) fn shared(&self) -> Arc<dyn EventStore> {
        match self {
            Outbox::Postgres(store) => Arc::new(store.clone()),
            Outbox::Sqlite(store) => Arc::new(store.clone()),
        }
    }
}

/// A schema of its own for a run, dropped after it: a shared server is
/// never disturbed.
pub(super) fn bench_schema() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("soiree_bench_{}_{millis}", std::process::id())
}

/// Drops a run's schema, saying so when it cannot.
pub(super) async fn drop_schema(store: &PostgresStore, schema: &str) {
    let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(store.pool())
    .await;
    if let Err(err) = dropped {
        eprintln!("could not drop the bench schema {schema}: {err}");
    }
}

/// Runs `measure` on a PostgreSQL store at `url` in a schema of its own
/// ([`bench_schema`]), dropped after the run whatever its outcome.
pub(super) async fn in_bench_schema<T, F, Fut>(url: &str, measure: F) -> Result<T>
where
    F: FnOnce(PostgresStore) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let schema = bench_schema();
    let store = PostgresStore::builder(url)
        .schema(&schema)
        .metrics_registry(MetricsRegistry::new())
        .build()
        .await
        .map_err(store_error)?;
    let outcome = measure(store.clone()).await;
    drop_schema(&store, &schema).await;
    outcome
}

/// Runs `measure` on a SQLite store in a temporary directory of its own
/// (`name` and the process id tell it apart), removed after the run.
pub(super) async fn in_temp_sqlite<T, F, Fut>(name: &str, measure: F) -> Result<T>
where
    F: FnOnce(SqliteStore) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let dir = std::env::temp_dir().join(format!("soiree-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = SqliteStore::builder(dir.join("events.db"))
        .metrics_registry(MetricsRegistry::new())
        .build()
        .await
        .map_err(store_error)?;
    let outcome = measure(store).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn run_postgres(setup: Setup) -> Result<Report> {
    let url = setup.postgres.clone().unwrap_or_default();
    in_bench_schema(&url, |store| measure(&setup, Outbox::Postgres(store))).await
}

async fn run_sqlite(setup: Setup) -> Result<Report> {
    in_temp_sqlite("outbox", |store| measure(&setup, Outbox::Sqlite(store))).await
}

/// Emits the run's events of [`TOPIC`] through `outbox` (see [`produce`]).
pub(super) async fn emit_all(setup: &Setup, outbox: Outbox) -> Result<()> {
    produce(setup, move |chunk| {
        let outbox = outbox.clone();
        async move {
            let batch = chunk.into_iter().map(|i| (TOPIC, i)).collect();
            outbox.emit_batch(batch).await
        }
    })
    .await
}

/// How a run's events went, timed from the first emit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Drained {
    /// Until every event was emitted.
    pub(super) emitted: Duration,
    /// Whether every event was handled in time.
    pub(super) finished: bool,
    /// Until every event was handled (or the wait gave up).
    pub(super) elapsed: Duration,
}

/// Emits the run's events through `outbox` ([`emit_all`]), waits until
/// `handled` has them all (at most [`LIMIT`]), then closes `bus` once idle.
pub(super) async fn emit_and_drain(
    setup: &Setup,
    outbox: Outbox,
    bus: &EventBus,
    handled: &Handled,
) -> Result<Drained> {
    let start = Instant::now();
    emit_all(setup, outbox).await?;
    let emitted = start.elapsed();
    let finished = handled.wait_for_all().await;
    let elapsed = start.elapsed();
    bus.wait_for_idle().await;
    bus.close().await?;
    Ok(Drained {
        emitted,
        finished,
        elapsed,
    })
}

/// Runs the scenario on `store`.
async fn measure(setup: &Setup, store: Outbox) -> Result<Report> {
    let n = setup.n;
    let bus = EventBus::builder()
        .shared_store(store.shared())
        .pool_name("bench")
        .metrics_registry(MetricsRegistry::new())
        .build()?;
    let handled = Arc::new(Handled::new(n));
    let recorder = Arc::clone(&handled);
    bus.on_named("bench", TOPIC, move |ctx| {
        recorder.record(ctx.event_id().unwrap_or_default());
        futures::future::ready(Ok(()))
    })?;
    bus.start()?;
    let drained = emit_and_drain(setup, store.clone(), &bus, &handled).await?;
    let finished = drained.finished;

    let (distinct, runs) = handled.counts();
    let backlog = store.queue().backlog().await?;
    Ok(Report::new(setup, drained.elapsed, n)
        .figure("emit_seconds", drained.emitted.as_secs_f64(), 4)
        .count("handled", distinct)
        .count("duplicates", runs - distinct)
        .count("backlog", backlog)
        .check(finished, || {
            format!("only {distinct} of {n} events handled in time")
        })
        .check(distinct == n && runs == n, || {
            format!("{n} events: {distinct} distinct ids handled in {runs} runs")
        })
        .check(backlog == 0, || format!("{backlog} events left pending")))
}
