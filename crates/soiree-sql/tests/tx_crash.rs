//! Transactional listeners are effectively once through crashes: consumer
//! processes killed with `kill -9` at random points of 1,000 deliveries,
//! each delivery's listener inserting one row in its transaction → every
//! event's row exists exactly once (none missing, none twice).
//!
//! This test binary is its own consumer: started with `SOIREE_TX_CRASH`
//! set, it runs a bus with a transactional listener on the store until
//! killed. The parent commits the events, then kills consumers after random
//! delays (seeded; the seed is printed) and starts new ones until the
//! backlog drained, and counts the rows. It runs on SQLite, then on a
//! throwaway PostgreSQL (skipped outside CI when PostgreSQL is missing).

mod support;

use std::time::Duration;

use serde_json::json;
use soiree::{EventBus, EventQueue};
use soiree_sql::{Driver, PostgresStore, SqlStore, SqliteStore, sqlx};
use soiree_test::process::{ChildProcess, plain_main};
use sqlx::AssertSqlSafe;
use support::{PostgresServer, TempDir, fresh_schema, within};

const CHILD_ENV: &str = "SOIREE_TX_CRASH";
const N: usize = 1000;
const PER_TX: usize = 100;
const LEASE: Duration = Duration::from_millis(500);
const LIMIT: Duration = Duration::from_secs(60);
/// A consumer killed after claiming and before handling still counts a
/// delivery: more than the kills, so that no event goes to the dead letters.
const MAX_DELIVERIES: u32 = 100;
/// Consumers killed at most; the one after the last runs to the end.
const KILLS: usize = 15;

fn main() {
    let Some(runtime) = plain_main("tx_crash") else {
        return;
    };
    if let Ok(kind) = std::env::var(CHILD_ENV) {
        if std::env::var_os("SOIREE_TX_CRASH_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_writer(std::io::stderr)
                .init();
        }
        runtime.block_on(child(&kind));
        return;
    }
    println!("test tx_crash::sqlite ...");
    runtime.block_on(sqlite_crashes());
    match PostgresServer::start_or_skip() {
        Some(server) => {
            println!("test tx_crash::postgres ...");
            runtime.block_on(postgres_crashes(&server));
            println!("test result: ok. 2 passed; 0 failed");
        }
        None => println!("test result: ok. 1 passed; 0 failed; 1 skipped (no postgres)"),
    }
}

async fn sqlite_store(path: &str, consumer: &str) -> SqliteStore {
    SqliteStore::builder(path)
        .consumer(consumer)
        .lease_timeout(LEASE)
        .max_deliveries(MAX_DELIVERIES)
        .poll_interval(Duration::from_millis(20))
        .metrics_registry(soiree::MetricsRegistry::new())
        .build()
        .await
        .expect("sqlite store")
}

async fn pg_store(url: &str, schema: &str, consumer: &str) -> PostgresStore {
    PostgresStore::builder(url)
        .schema(schema)
        .consumer(consumer)
        .lease_timeout(LEASE)
        .max_deliveries(MAX_DELIVERIES)
        .poll_interval(Duration::from_millis(20))
        .metrics_registry(soiree::MetricsRegistry::new())
        .build()
        .await
        .expect("postgres store")
}

/// A consumer until killed: a transactional listener inserts one row per
/// event into `SOIREE_TX_TABLE`, then lingers a little inside its
/// transaction so that kills land between its write and its commit too.
async fn child(kind: &str) {
    let at = std::env::var("SOIREE_TX_AT").expect("at");
    let table = std::env::var("SOIREE_TX_TABLE").expect("table");
    let name = format!("consumer-{}", std::process::id());
    match kind {
        "sqlite" => consume(sqlite_store(&at, &name).await, table).await,
        _ => {
            let schema = std::env::var("SOIREE_SCHEMA").expect("schema");
            consume(pg_store(&at, &schema, &name).await, table).await;
        }
    }
}

async fn consume<DB: Driver>(store: SqlStore<DB>, table: String)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let bus = EventBus::builder()
        .store(store.clone())
        .workers(4)
        .poll_wait(Duration::from_millis(100))
        .build()
        .expect("bus");
    let insert = format!("INSERT INTO {table} (event_id) VALUES ($1)");
    store
        .on_tx(&bus, "effect", "crash.*", move |ctx, mut tx| {
            let insert = insert.clone();
            async move {
                sqlx::query(AssertSqlSafe(insert))
                    .bind(ctx.event_id().unwrap_or_default())
                    .execute(&mut *tx)
                    .await?;
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(tx)
            }
        })
        .expect("listener");
    bus.start().expect("start");
    std::future::pending::<()>().await;
}

/// A small seeded generator of kill delays (xorshift).
struct Delays(u64);

impl Delays {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        println!("kill delays seed={seed}");
        Self(seed)
    }

    /// 50..650 ms: a consumer starts in about 100 ms, so most kills land
    /// among its deliveries.
    fn next(&mut self) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(50 + self.0 % 600)
    }
}

/// What the parent needs of a store: emit, count rows, and the backlog.
async fn crashes<DB: Driver>(store: SqlStore<DB>, table: &str, spawn: impl Fn() -> ChildProcess)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let mut conn = store.pool().acquire().await.expect("connection");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE {table} (event_id TEXT NOT NULL)"
    )))
    .execute(&mut *conn)
    .await
    .expect("table");
    drop(conn);
    let mut ids = Vec::new();
    for chunk in 0..N / PER_TX {
        let mut tx = within(LIMIT, "begin", store.begin()).await.expect("begin");
        let batch = (0..PER_TX).map(|n| ("crash.job", json!({ "n": chunk * PER_TX + n })));
        ids.extend(
            store
                .emit_all_in(&mut tx, batch)
                .await
                .expect("emit_all_in"),
        );
        within(LIMIT, "commit", store.commit(tx))
            .await
            .expect("commit");
    }
    assert_eq!(ids.len(), N);

    let count = |sql: String| {
        let store = store.clone();
        async move {
            let mut conn = store.pool().acquire().await.expect("connection");
            sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
                .fetch_one(&mut *conn)
                .await
                .expect("count")
        }
    };
    let rows = || count(format!("SELECT count(*) FROM {table}"));
    let started = std::time::Instant::now();
    let mut delays = Delays::new();
    let mut kills = 0;
    let mut progress = Vec::new();
    while kills < KILLS {
        let mut consumer = spawn();
        tokio::time::sleep(delays.next()).await;
        consumer.kill(); // kill -9, reaped
        kills += 1;
        let done = within(LIMIT, "count", rows()).await;
        progress.push(done);
        if done >= N as i64 {
            break;
        }
    }
    // The last consumer runs until every event is handled and acknowledged.
    let mut last = spawn();
    let deadline = tokio::time::Instant::now() + LIMIT;
    let drained = loop {
        let backlog = within(LIMIT, "backlog", store.backlog()).await.ok();
        if backlog == Some(0) && within(LIMIT, "count", rows()).await >= N as i64 {
            break true;
        }
        if tokio::time::Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    last.kill();
    let total = within(LIMIT, "count", rows()).await;
    let distinct = within(
        LIMIT,
        "count",
        count(format!("SELECT count(DISTINCT event_id) FROM {table}")),
    )
    .await;
    println!(
        "events={N} kills={kills} rows_after_each_kill={progress:?} rows={total} \
         distinct={distinct} elapsed={:?}",
        started.elapsed()
    );
    assert!(drained, "the backlog did not drain: {total} rows of {N}");
    let dead = within(LIMIT, "dead letters", store.sql_dead_letters(None, 10))
        .await
        .expect("dead letters");
    assert!(dead.items.is_empty(), "dead letters: {:?}", dead.items);
    assert_eq!(distinct, N as i64, "every event has its row");
    assert_eq!(total, N as i64, "no event has two rows");
    // And they are the events emitted, not others.
    let mut conn = store.pool().acquire().await.expect("connection");
    for chunk in ids.chunks(100) {
        let list = chunk
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(",");
        let found: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE event_id IN ({list})"
        )))
        .fetch_one(&mut *conn)
        .await
        .expect("ids");
        assert_eq!(found, chunk.len() as i64, "rows of the emitted events");
    }
}

async fn sqlite_crashes() {
    let dir = TempDir::new();
    let path = dir.db();
    let at = path.to_str().expect("utf-8 path").to_owned();
    let store = sqlite_store(&at, "producer").await;
    let spawn = || {
        ChildProcess::start(
            ChildProcess::command()
                .env(CHILD_ENV, "sqlite")
                .env("SOIREE_TX_AT", &at)
                .env("SOIREE_TX_TABLE", "effects"),
        )
    };
    crashes(store, "effects", spawn).await;
}

async fn postgres_crashes(server: &PostgresServer) {
    let schema = fresh_schema();
    let url = server.url();
    let store = pg_store(&url, &schema, "producer").await;
    let table = format!("\"{schema}\".effects");
    let spawn = || {
        ChildProcess::start(
            ChildProcess::command()
                .env(CHILD_ENV, "postgres")
                .env("SOIREE_TX_AT", &url)
                .env("SOIREE_SCHEMA", &schema)
                .env("SOIREE_TX_TABLE", &table),
        )
    };
    crashes(store, &table, spawn).await;
}
