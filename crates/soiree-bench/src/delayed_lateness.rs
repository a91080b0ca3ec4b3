//! delayed-lateness: N events scheduled with `emit_at`, their due times
//! spread evenly over `--spread` seconds (10 by default) from 2 s after the run
//! starts, on each store that schedules: the memory queue, SQLite (a
//! temporary file), PostgreSQL (`--postgres`, else a throwaway server, else
//! skipped), Redis (`--redis`, else a throwaway server, else skipped) and
//! NATS (a throwaway nats-server, as nats-durable starts; skipped when
//! none is installed); `--stores` names fewer. One named listener records when each event
//! reached it.
//!
//! Lateness is the wall-clock time the listener started less the event's
//! due time, reported per store as `<store>_p50_ms=`, `<store>_p99_ms=`
//! and `<store>_max_ms=` (`memory`, `sqlite`, `pg`, `redis`, `nats`), with
//! `<store>_emit_s=`, how long scheduling the N events took, and
//! `<store>_stored_late=`, how many were stored only after their due time
//! (their lateness is the store's write time, not its scheduler's: the
//! figures are the scheduler's only when it is 0).
//! Checked per store: no event early (`<store>_early=` must be 0), every
//! id handled exactly once, nothing left pending or scheduled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::{FutureExt, StreamExt};
use soiree::{EventBus, EventStore, Inspect, MemoryStore, MetricsRegistry};
use tokio::sync::mpsc;

use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use super::sql_outbox::{in_bench_schema, in_temp_sqlite};
use crate::error::{Error, Result};

pub(super) const SCENARIO: Scenario = Scenario {
    name: "delayed-lateness",
    default_n: 10_000,
    needs: Needs::File,
    run: |setup| run(setup).boxed(),
};

const TOPIC: &str = "reminder.due";
/// From the start of a store's run to the first due time: time to schedule
/// the events before they fall due.
const LEAD: Duration = Duration::from_secs(2);
/// How long after the last due time a store may take to deliver them all.
const GRACE: Duration = Duration::from_secs(120);
/// Emissions awaited at once while scheduling.
const IN_FLIGHT: usize = 64;

/// A store the scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    Memory,
    Sqlite,
    Postgres,
    Redis,
    Nats,
}

impl Store {
    /// Every store, in the order they run.
    pub(crate) const ALL: [Store; 5] = [
        Store::Memory,
        Store::Sqlite,
        Store::Postgres,
        Store::Redis,
        Store::Nats,
    ];

    /// The name `--stores` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Store::Memory => "memory",
            Store::Sqlite => "sqlite",
            Store::Postgres => "postgres",
            Store::Redis => "redis",
            Store::Nats => "nats",
        }
    }

    /// The keys of its figures: p50, p99, max, early, emit, stored late.
    fn keys(self) -> [&'static str; 6] {
        match self {
            Store::Memory => [
                "memory_p50_ms",
                "memory_p99_ms",
                "memory_max_ms",
                "memory_early",
                "memory_emit_s",
                "memory_stored_late",
            ],
            Store::Sqlite => [
                "sqlite_p50_ms",
                "sqlite_p99_ms",
                "sqlite_max_ms",
                "sqlite_early",
                "sqlite_emit_s",
                "sqlite_stored_late",
            ],
            Store::Postgres => [
                "pg_p50_ms",
                "pg_p99_ms",
                "pg_max_ms",
                "pg_early",
                "pg_emit_s",
                "pg_stored_late",
            ],
            Store::Redis => [
                "redis_p50_ms",
                "redis_p99_ms",
                "redis_max_ms",
                "redis_early",
                "redis_emit_s",
                "redis_stored_late",
            ],
            Store::Nats => [
                "nats_p50_ms",
                "nats_p99_ms",
                "nats_max_ms",
                "nats_early",
                "nats_emit_s",
                "nats_stored_late",
            ],
        }
    }
}

/// What one store's run measured.
#[derive(Debug)]
struct Outcome {
    /// Lateness of each handled event (first handling), sorted.
    late: Vec<Duration>,
    /// Events handled before their due time.
    early: u64,
    /// Ids handled more than once, and ids never handled.
    duplicates: u64,
    missing: u64,
    /// Events left pending or scheduled after the run.
    left: u64,
    emit: Duration,
    /// Events whose emission was persisted only after their due time.
    stored_late: u64,
}

async fn run(setup: Setup) -> Result<Report> {
    let start = Instant::now();
    let mut outcomes = Vec::new();
    for store in setup.stores.clone() {
        super::progress::say(&format!("delayed-lateness: {}", store.name()));
        let outcome = match store {
            Store::Memory => Some(measure(&setup, Arc::new(MemoryStore::queue())).await?),
            Store::Sqlite => {
                Some(in_temp_sqlite("lateness", |sqlite| measure(&setup, Arc::new(sqlite))).await?)
            }
            Store::Postgres => run_postgres(&setup).await?,
            Store::Redis => run_redis(&setup).await?,
            Store::Nats => run_nats(&setup).await?,
        };
        if let Some(outcome) = outcome {
            outcomes.push((store, outcome));
        }
    }
    let units = setup.n * outcomes.len() as u64;
    let mut report = Report::new(&setup, start.elapsed(), units);
    for (store, outcome) in &outcomes {
        let [p50, p99, max, early, emit, stored_late] = store.keys();
        let name = store.name();
        report = report
            .figure(p50, percentile(&outcome.late, 50), 3)
            .figure(p99, percentile(&outcome.late, 99), 3)
            .figure(max, percentile(&outcome.late, 100), 3)
            .count(early, outcome.early)
            .figure(emit, outcome.emit.as_secs_f64(), 3)
            .count(stored_late, outcome.stored_late)
            .check(outcome.early == 0, || {
                format!(
                    "{name}: {} events delivered before their due time",
                    outcome.early
                )
            })
            .check(outcome.duplicates == 0 && outcome.missing == 0, || {
                format!(
                    "{name}: {} ids handled more than once, {} never",
                    outcome.duplicates, outcome.missing
                )
            })
            .check(outcome.left == 0, || {
                format!("{name}: {} events left pending or scheduled", outcome.left)
            });
    }
    Ok(report)
}

async fn run_postgres(setup: &Setup) -> Result<Option<Outcome>> {
    let (url, _server) = match &setup.postgres {
        Some(url) => (url.clone(), None),
        None => {
            let started = tokio::task::spawn_blocking(super::runner::start_postgres)
                .await
                .map_err(|err| aborted(setup, err))?;
            match started {
                Ok(server) => (server.url(), Some(server)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    super::progress::say(&format!("delayed-lateness: skipping PostgreSQL: {err}"));
                    return Ok(None);
                }
                Err(err) => return Err(err.into()),
            }
        }
    };
    in_bench_schema(&url, |store| measure(setup, Arc::new(store)))
        .await
        .map(Some)
}

async fn run_redis(setup: &Setup) -> Result<Option<Outcome>> {
    let mut setup = setup.clone();
    let _server = match &setup.redis {
        Some(_) => None,
        None => {
            let started = tokio::task::spawn_blocking(soiree_test::redis::RedisServer::start)
                .await
                .map_err(|err| aborted(&setup, err))?;
            match started {
                Ok(server) => {
                    setup.redis = Some(server.url());
                    Some(server)
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    super::progress::say(&format!("delayed-lateness: skipping Redis: {err}"));
                    return Ok(None);
                }
                Err(err) => return Err(err.into()),
            }
        }
    };
    // A fresh prefix, purged after the run: a shared server is not disturbed.
    let store = super::redis_durable::connect(&setup, "lateness").await?;
    let outcome = measure(&setup, Arc::new(store.clone())).await;
    let _ = store.purge().await;
    outcome.map(Some)
}

async fn run_nats(setup: &Setup) -> Result<Option<Outcome>> {
    // A throwaway server for the run, as nats-durable's: its streams go
    // with it.
    let started = tokio::task::spawn_blocking(soiree_test::nats::NatsServer::start)
        .await
        .map_err(|err| aborted(setup, err))?;
    let server = match started {
        Ok(server) => server,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            super::progress::say(&format!("delayed-lateness: skipping NATS: {err}"));
            return Ok(None);
        }
        Err(err) => return Err(err.into()),
    };
    let store = soiree_nats::NatsStore::builder(&server.url())
        .prefix("lateness")
        .build()
        .await
        .map_err(|err| Error::Bus(err.into()))?;
    measure(setup, Arc::new(store)).await.map(Some)
}

fn aborted(setup: &Setup, err: impl std::fmt::Display) -> Error {
    Error::Aborted {
        scenario: setup.scenario,
        reason: err.to_string(),
    }
}

/// The due time of event `i` of `n`: spread evenly over `over` from `base`.
fn due(base: SystemTime, over: Duration, i: u64, n: u64) -> SystemTime {
    let offset = over.as_nanos() * u128::from(i) / u128::from(n.max(1));
    base + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

/// Schedules the events on a bus over `store`, waits until every one is
/// handled (or the grace period ends), and measures.
async fn measure<S>(setup: &Setup, store: Arc<S>) -> Result<Outcome>
where
    S: EventStore + Inspect + 'static,
{
    let n = setup.n;
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .pool_name("bench")
        .metrics_registry(MetricsRegistry::new())
        .build()?;
    let (handled, mut arrivals) = mpsc::unbounded_channel::<(u64, SystemTime)>();
    bus.on_named("bench", TOPIC, move |ctx| {
        // The wall clock, as due times are: the stores keep them as such.
        let at = SystemTime::now();
        let i = ctx.payload().decode::<u64>().unwrap_or(u64::MAX);
        let _ = handled.send((i, at));
        futures::future::ready(Ok(()))
    })?;
    bus.start()?;

    let base = SystemTime::now() + LEAD;
    let over = setup.spread;
    let emitting = Instant::now();
    let mut emissions = futures::stream::iter(0..n)
        .map(|i| {
            let mut emission = bus.emit_at(TOPIC, i, due(base, over, i, n));
            async move {
                emission.persisted().await?;
                Ok::<_, soiree::Error>((i, SystemTime::now()))
            }
        })
        .buffer_unordered(IN_FLIGHT);
    let mut stored_late = 0;
    while let Some(emitted) = emissions.next().await {
        let (i, stored) = emitted?;
        if stored > due(base, over, i, n) {
            stored_late += 1;
        }
    }
    drop(emissions);
    let emit = emitting.elapsed();

    let mut first: HashMap<u64, SystemTime> = HashMap::with_capacity(n as usize);
    let mut duplicates = 0;
    let deadline = tokio::time::Instant::now()
        + base.duration_since(SystemTime::now()).unwrap_or_default()
        + over
        + GRACE;
    while (first.len() as u64) < n {
        match tokio::time::timeout_at(deadline, arrivals.recv()).await {
            Ok(Some((i, at))) => {
                if first.insert(i, at).is_some() {
                    duplicates += 1;
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    bus.wait_for_idle().await;
    // Handlings after the last first one: duplicates.
    while let Ok((i, at)) = arrivals.try_recv() {
        if first.insert(i, at).is_some() {
            duplicates += 1;
        }
    }
    let stats = Inspect::stats(&*store).await?;
    bus.close().await?;

    let mut late = Vec::with_capacity(first.len());
    let mut early = 0;
    for (&i, &at) in &first {
        match at.duration_since(due(base, over, i, n)) {
            Ok(lateness) => late.push(lateness),
            Err(_) => early += 1,
        }
    }
    late.sort_unstable();
    let missing = (0..n).filter(|i| !first.contains_key(i)).count() as u64;
    Ok(Outcome {
        late,
        early,
        duplicates,
        missing,
        left: stats.backlog + stats.scheduled,
        emit,
        stored_late,
    })
}

/// The `p`-th percentile of sorted `values` in milliseconds (100: the
/// largest); 0 without values.
fn percentile(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[index].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_spread_evenly_from_the_base() {
        let base = SystemTime::UNIX_EPOCH;
        let over = Duration::from_secs(10);
        assert_eq!(due(base, over, 0, 4), base);
        assert_eq!(due(base, over, 1, 4), base + Duration::from_millis(2500));
        assert_eq!(due(base, over, 3, 4), base + Duration::from_millis(7500));
    }

    #[test]
    fn percentiles_of_sorted_lateness() {
        let late: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&late, 50), 51.0);
        assert_eq!(percentile(&late, 99), 100.0);
        assert_eq!(percentile(&late, 100), 100.0);
        assert_eq!(percentile(&[], 50), 0.0);
    }
}
