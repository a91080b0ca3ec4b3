//! mutation-capture: N rows inserted in transactions of 100 (one
//! multi-row `INSERT` each, from 4 concurrent tasks) into a table with
//! soiree's mutation triggers, on SQLite and on PostgreSQL; one named
//! mutation listener counts the events by id. Timed per store from the
//! first insert until every row's event is handled; the bus starts once
//! the rows are in. In the same run the
//! same rows are inserted, the same way, into a table without triggers
//! (`*_plain_rate=`), and `*_capture_cost=` is the insert time with the
//! triggers over the time without them, both with no consumer running. Without `--postgres`
//! a throwaway PostgreSQL server is started (`fsync=off`), or the
//! PostgreSQL half is skipped when none is installed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use soiree::mutation::{Mutations, Operation};
use soiree::{EventBus, EventQueue, EventStore, MetricsRegistry};
use soiree_sql::triggers::MutationTrigger;
use soiree_sql::{PostgresStore, SqliteStore};
use sqlx::AssertSqlSafe;

use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use super::sql_outbox::{Handled, in_bench_schema, in_temp_sqlite, produce, store_error};
use crate::error::{Error, Result};

pub(super) const SCENARIO: Scenario = Scenario {
    name: "mutation-capture",
    default_n: 20_000,
    needs: Needs::File,
    run: |setup| run(setup).boxed(),
};

const ENTITY: &str = "Account";

/// What one store's run measured.
#[derive(Debug)]
struct Outcome {
    elapsed: Duration,
    inserted: Duration,
    /// The same rows inserted into a table without triggers.
    plain: Duration,
    distinct: u64,
    runs: u64,
    wrong: u64,
    backlog: u64,
    finished: bool,
}

#[derive(Debug, Clone)]
enum Db {
    Postgres(PostgresStore),
    Sqlite(SqliteStore),
}

impl Db {
    async fn exec(&self, sql: String) -> soiree_sql::Result<()> {
        match self {
            Db::Postgres(store) => {
                sqlx::query(AssertSqlSafe(sql))
                    .execute(store.pool())
                    .await?;
            }
            Db::Sqlite(store) => {
                sqlx::query(AssertSqlSafe(sql))
                    .execute(store.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// Inserts rows `ids` in one transaction, with one prepared statement
    /// (the same for every transaction, as an application's would be).
    async fn insert(&self, table: &str, ids: &[u64]) -> soiree_sql::Result<()> {
        let names: Vec<String> = ids.iter().map(|id| format!("account {id}")).collect();
        let balances: Vec<i64> = ids.iter().map(|id| (id % 1000) as i64).collect();
        let ids: Vec<i64> = ids.iter().map(|&id| id as i64).collect();
        match self {
            Db::Postgres(store) => {
                let sql = format!(
                    "INSERT INTO {table} (id, name, balance) \
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])"
                );
                let mut tx = store.begin().await?;
                sqlx::query(AssertSqlSafe(sql))
                    .bind(ids)
                    .bind(names)
                    .bind(balances)
                    .execute(&mut *tx)
                    .await?;
                store.commit(tx).await
            }
            Db::Sqlite(store) => {
                let rows: Vec<serde_json::Value> = ids
                    .iter()
                    .zip(&names)
                    .zip(&balances)
                    .map(|((id, name), balance)| serde_json::json!([id, name, balance]))
                    .collect();
                let sql = format!(
                    "INSERT INTO {table} (id, name, balance) \
                     SELECT value->>0, value->>1, value->>2 FROM json_each(?1)"
                );
                let mut tx = store.begin().await?;
                sqlx::query(AssertSqlSafe(sql))
                    .bind(serde_json::Value::Array(rows).to_string())
                    .execute(&mut *tx)
                    .await?;
                store.commit(tx).await
            }
        }
    }

    async fn install(&self, trigger: &MutationTrigger) -> soiree_sql::Result<()> {
        match self {
            Db::Postgres(store) => store.install_mutation_triggers(trigger).await,
            Db::Sqlite(store) => store.install_mutation_triggers(trigger).await,
        }
    }

    fn queue(&self) -> &dyn EventQueue {
        match self {
            Db::Postgres(store) => store,
            Db::Sqlite(store) => store,
        }
    }

    fn shared(&self) -> Arc<dyn EventStore> {
        match self {
            Db::Postgres(store) => Arc::new(store.clone()),
            Db::Sqlite(store) => Arc::new(store.clone()),
        }
    }
}

async fn run(setup: Setup) -> Result<Report> {
    let sqlite = run_sqlite(&setup).await?;
    let postgres = run_postgres(&setup).await?;
    let n = setup.n;
    // The headline: rows captured and handled per second over both stores.
    let stores = [Some(&sqlite), postgres.as_ref()];
    let (seconds, units) = stores
        .iter()
        .flatten()
        .fold((Duration::ZERO, 0), |(time, units), o| {
            (time + o.elapsed, units + n)
        });
    let mut report = Report::new(&setup, seconds, units);
    for (store, outcome) in [("sqlite", Some(&sqlite)), ("postgres", postgres.as_ref())] {
        let Some(outcome) = outcome else {
            continue;
        };
        let [
            rate_key,
            seconds_key,
            insert_key,
            plain_rate_key,
            plain_key,
            cost_key,
        ] = if store == "sqlite" {
            [
                "sqlite_rate",
                "sqlite_seconds",
                "sqlite_insert_seconds",
                "sqlite_plain_rate",
                "sqlite_plain_seconds",
                "sqlite_capture_cost",
            ]
        } else {
            [
                "postgres_rate",
                "postgres_seconds",
                "postgres_insert_seconds",
                "postgres_plain_rate",
                "postgres_plain_seconds",
                "postgres_capture_cost",
            ]
        };
        let seconds = outcome.elapsed.as_secs_f64();
        let per_second = |seconds: f64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        let plain = outcome.plain.as_secs_f64();
        let inserted = outcome.inserted.as_secs_f64();
        let cost = if plain > 0.0 { inserted / plain } else { 0.0 };
        report = report
            .figure(rate_key, per_second(seconds), 0)
            .figure(seconds_key, seconds, 4)
            .figure(insert_key, inserted, 4)
            .figure(plain_rate_key, per_second(plain), 0)
            .figure(plain_key, plain, 4)
            .figure(cost_key, cost, 2)
            .check(outcome.finished, || {
                format!(
                    "{store}: only {} of {n} mutations handled in time",
                    outcome.distinct
                )
            })
            .check(outcome.distinct == n && outcome.runs == n, || {
                format!(
                    "{store}: {n} rows: {} distinct events handled in {} runs",
                    outcome.distinct, outcome.runs
                )
            })
            .check(outcome.wrong == 0, || {
                format!("{store}: {} events with a wrong payload", outcome.wrong)
            })
            .check(outcome.backlog == 0, || {
                format!("{store}: {} events left pending", outcome.backlog)
            });
    }
    // Without PostgreSQL the run said so on stderr and reports SQLite only.
    Ok(report)
}

async fn run_sqlite(setup: &Setup) -> Result<Outcome> {
    in_temp_sqlite("mutations", |store| measure(setup, Db::Sqlite(store))).await
}

async fn run_postgres(setup: &Setup) -> Result<Option<Outcome>> {
    let (url, _server) = match &setup.postgres {
        Some(url) => (url.clone(), None),
        None => {
            let started = tokio::task::spawn_blocking(super::runner::start_postgres)
                .await
                .map_err(|err| Error::Aborted {
                    scenario: setup.scenario,
                    reason: err.to_string(),
                })?;
            match started {
                Ok(server) => (server.url(), Some(server)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    super::progress::say(&format!("mutation-capture: skipping PostgreSQL: {err}"));
                    return Ok(None);
                }
                Err(err) => return Err(err.into()),
            }
        }
    };
    // A schema of its own for the store and the table, dropped after the
    // run: a shared server is never disturbed.
    in_bench_schema(&url, |store| measure(setup, Db::Postgres(store)))
        .await
        .map(Some)
}

/// Runs the scenario on one store.
async fn measure(setup: &Setup, db: Db) -> Result<Outcome> {
    let n = setup.n;
    let (table, trigger) = match &db {
        Db::Postgres(store) => (
            format!("\"{}\".bench_accounts", store.schema()),
            MutationTrigger::new("bench_accounts", ENTITY).table_schema(store.schema()),
        ),
        Db::Sqlite(_) => (
            "bench_accounts".to_owned(),
            MutationTrigger::new("bench_accounts", ENTITY),
        ),
    };
    let plain_table = format!("{table}_plain");
    for table in [&table, &plain_table] {
        db.exec(format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, balance BIGINT NOT NULL)"
        ))
        .await
        .map_err(store_error)?;
    }
    db.install(&trigger).await.map_err(store_error)?;

    // The same rows, the same way, into the table without triggers: what
    // the capture costs is the difference.
    let start = Instant::now();
    let writer = db.clone();
    produce(setup, move |chunk| {
        let (db, table) = (writer.clone(), plain_table.clone());
        async move { db.insert(&table, &chunk).await }
    })
    .await?;
    let plain = start.elapsed();

    let bus = EventBus::builder()
        .shared_store(db.shared())
        .pool_name("bench")
        .metrics_registry(MetricsRegistry::new())
        .build()?;
    let mutations = Mutations::new(bus.clone());
    let handled = Arc::new(Handled::new(n));
    let wrong = Arc::new(AtomicU64::new(0));
    let (recorder, wrongs) = (Arc::clone(&handled), Arc::clone(&wrong));
    mutations.add_named_mutation_listener("bench", ENTITY, move |ctx, payload| {
        if payload.operation != Operation::Create || payload.after.is_none() {
            wrongs.fetch_add(1, Ordering::Relaxed);
        }
        recorder.record(ctx.event_id().unwrap_or_default());
        futures::future::ready(Ok(()))
    })?;

    // The captured rows are inserted before the bus starts, as the plain
    // ones were: the insert time is the triggers' cost alone, not the
    // consumer's claims and settles competing for the database (on SQLite,
    // its one write lock).
    let start = Instant::now();
    let writer = db.clone();
    produce(setup, move |chunk| {
        let (db, table) = (writer.clone(), table.clone());
        async move { db.insert(&table, &chunk).await }
    })
    .await?;
    let inserted = start.elapsed();
    bus.start()?;
    let finished = handled.wait_for_all().await;
    let elapsed = start.elapsed();
    bus.wait_for_idle().await;
    bus.close().await?;

    let (distinct, runs) = handled.counts();
    let wrong = wrong.load(Ordering::Relaxed);
    let backlog = db.queue().backlog().await?;
    Ok(Outcome {
        elapsed,
        inserted,
        plain,
        distinct,
        runs,
        wrong,
        backlog,
        finished,
    })
}
