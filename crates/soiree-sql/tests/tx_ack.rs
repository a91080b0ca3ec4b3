//! A transactional listener that is its event's last listener acknowledges
//! the delivery in its own transaction: a consumer killed with `kill -9`
//! right after the commit, before the bus's acknowledgement, leaves nothing
//! to deliver again — a second consumer of the group sees no delivery of
//! the event at all (a plain "witness" listener on the same topic, which
//! the success records do not skip, never runs). Both kinds of delivery:
//! an event of a lease of the log, and a row of the retry table (the first
//! delivery fails). And in one process, the bus's later acknowledgement of
//! such a delivery is a no-op: no stale acknowledgement, no redelivery.
//!
//! This test binary is its own consumer: started with `SOIREE_TX_ACK` set,
//! it runs a bus with a transactional listener whose commit it traps (a
//! tracing layer that sees the store's "transactional listener committed",
//! says so on stdout and blocks the listener's task, so the bus cannot
//! acknowledge); the parent then kills it. SQLite, then a throwaway
//! PostgreSQL (skipped outside CI when PostgreSQL is missing).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use soiree::{EventBus, EventQueue, MetricsRegistry};
use soiree_sql::{Driver, PostgresStore, SqlStore, SqliteStore, sqlx};
use soiree_test::process::{ChildProcess, plain_main};
use sqlx::AssertSqlSafe;
use support::{PostgresServer, TempDir, eventually, fresh_schema, within};
use tracing_subscriber::layer::SubscriberExt;

const CHILD_ENV: &str = "SOIREE_TX_ACK";
const LEASE: Duration = Duration::from_millis(500);
const LIMIT: Duration = Duration::from_secs(30);
/// What the child prints once the transaction committed.
const COMMITTED: &str = "COMMITTED";

fn main() {
    let Some(runtime) = plain_main("tx_ack") else {
        return;
    };
    if let Ok(kind) = std::env::var(CHILD_ENV) {
        let subscriber = tracing_subscriber::registry().with(Trap);
        tracing::subscriber::set_global_default(subscriber).expect("subscriber");
        runtime.block_on(child(&kind));
        return;
    }
    let mut passed = 0;
    for first_fails in [false, true] {
        println!(
            "test tx_ack::sqlite_crash_after_commit (first delivery fails: {first_fails}) ..."
        );
        runtime.block_on(sqlite_crash(first_fails));
        passed += 1;
    }
    println!("test tx_ack::sqlite_later_ack_is_a_no_op ...");
    runtime.block_on(sqlite_in_process());
    passed += 1;
    match PostgresServer::start_or_skip() {
        Some(server) => {
            for first_fails in [false, true] {
                println!(
                    "test tx_ack::postgres_crash_after_commit (first delivery fails: {first_fails}) ..."
                );
                runtime.block_on(postgres_crash(&server, first_fails));
                passed += 1;
            }
            println!("test tx_ack::postgres_later_ack_is_a_no_op ...");
            runtime.block_on(postgres_in_process(&server));
            passed += 1;
            println!("test result: ok. {passed} passed; 0 failed");
        }
        None => println!("test result: ok. {passed} passed; 0 failed; 3 skipped (no postgres)"),
    }
}

/// Blocks the task that logs the store's commit of a transactional
/// listener, after telling the parent on stdout: the bus never gets to
/// acknowledge that delivery, and the parent kills the process.
struct Trap;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Trap {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut message = Message(false);
        event.record(&mut message);
        if message.0 {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{COMMITTED}");
            let _ = out.flush();
            drop(out);
            // Bounded: the parent kills this process long before.
            std::thread::sleep(LIMIT * 4);
            std::process::abort();
        }
    }
}

/// Whether an event's message is the store's commit of a transactional
/// listener.
struct Message(bool);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 |= format!("{value:?}") == "transactional listener committed";
        }
    }
}

async fn sqlite_store(path: &str, consumer: &str, registry: MetricsRegistry) -> SqliteStore {
    SqliteStore::builder(path)
        .consumer(consumer)
        .lease_timeout(LEASE)
        .on_failure(soiree_sql::FailurePolicy::Redeliver)
        .retry_backoff(Duration::from_millis(10))
        .poll_interval(Duration::from_millis(20))
        .metrics_registry(registry)
        .build()
        .await
        .expect("sqlite store")
}

async fn pg_store(
    url: &str,
    schema: &str,
    consumer: &str,
    registry: MetricsRegistry,
) -> PostgresStore {
    PostgresStore::builder(url)
        .schema(schema)
        .consumer(consumer)
        .lease_timeout(LEASE)
        .on_failure(soiree_sql::FailurePolicy::Redeliver)
        .retry_backoff(Duration::from_millis(10))
        .poll_interval(Duration::from_millis(20))
        .metrics_registry(registry)
        .build()
        .await
        .expect("postgres store")
}

/// The consumer to kill: its transactional listener inserts the event's
/// row; the first run fails when the event says so (`fail_first`), so that
/// the committing run is a delivery of the retry table.
async fn child(kind: &str) {
    let at = std::env::var("SOIREE_TX_AT").expect("at");
    let table = std::env::var("SOIREE_TX_TABLE").expect("table");
    let registry = MetricsRegistry::new();
    match kind {
        "sqlite" => {
            let store = sqlite_store(&at, "doomed", registry).await;
            let _bus = effect_bus(&store, &table, None, None);
            std::future::pending::<()>().await;
        }
        _ => {
            let schema = std::env::var("SOIREE_SCHEMA").expect("schema");
            let store = pg_store(&at, &schema, "doomed", registry).await;
            let _bus = effect_bus(&store, &table, None, None);
            std::future::pending::<()>().await;
        }
    }
}

/// A started bus on `store` whose transactional listener `effect` inserts
/// a row per event into `table` (counting its runs in `runs`; failing its
/// first run of an event with `fail_first`), and, with `witness`, a plain
/// listener counting every delivery.
fn effect_bus<DB: Driver>(
    store: &SqlStore<DB>,
    table: &str,
    runs: Option<Arc<AtomicUsize>>,
    witness: Option<Arc<AtomicUsize>>,
) -> EventBus
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let bus = EventBus::builder()
        .store(store.clone())
        .workers(2)
        .poll_wait(Duration::from_millis(50))
        .build()
        .expect("bus");
    if let Some(witness) = witness {
        // Registered first: runs before the transactional listener, which
        // then is not the last one (the second consumer's is not meant to
        // acknowledge anything).
        bus.on_named("witness", "ack.*", move |_ctx| {
            witness.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .expect("witness");
    }
    let insert = format!("INSERT INTO {table} (event_id) VALUES ($1)");
    let failed = Arc::new(AtomicBool::new(false));
    store
        .on_tx(&bus, "effect", "ack.*", move |ctx, mut tx| {
            let insert = insert.clone();
            if let Some(runs) = &runs {
                runs.fetch_add(1, Ordering::SeqCst);
            }
            let fail = soiree::unwrap_payload::<serde_json::Value>(ctx.event())
                .is_ok_and(|payload| payload["fail_first"] == json!(true))
                && !failed.swap(true, Ordering::SeqCst);
            async move {
                if fail {
                    return Err(soiree::permanent(std::io::Error::other("first run fails")));
                }
                sqlx::query(AssertSqlSafe(insert))
                    .bind(ctx.event_id().unwrap_or_default())
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        })
        .expect("listener");
    bus.start().expect("start");
    bus
}

/// One scalar count on the store's database.
async fn count<DB: Driver>(store: &SqlStore<DB>, sql: &str) -> i64
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let mut conn = within(LIMIT, "connection", store.pool().acquire())
        .await
        .expect("connection");
    within(
        LIMIT,
        "count",
        sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_owned())).fetch_one(&mut *conn),
    )
    .await
    .expect("count")
}

/// Creates `table` and commits one event (`fail_first` in its payload).
async fn prepare<DB: Driver>(store: &SqlStore<DB>, table: &str, first_fails: bool) -> String
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let mut conn = store.pool().acquire().await.expect("connection");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE {table} (event_id TEXT NOT NULL)"
    )))
    .execute(&mut *conn)
    .await
    .expect("table");
    drop(conn);
    let mut tx = within(LIMIT, "begin", store.begin()).await.expect("begin");
    let id = store
        .emit_in(&mut tx, "ack.job", json!({ "fail_first": first_fails }))
        .await
        .expect("emit_in");
    within(LIMIT, "commit", store.commit(tx))
        .await
        .expect("commit");
    id
}

/// Runs the child until it says it committed, then kills it (`kill -9`).
fn run_child_until_commit(mut command: Command) {
    let mut child = ChildProcess::start(command.stdout(Stdio::piped()));
    let stdout = child.child().stdout.take().expect("stdout");
    let (said, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line == COMMITTED {
                let _ = said.send(());
                break;
            }
        }
    });
    let committed = heard.recv_timeout(LIMIT);
    child.kill();
    assert!(
        committed.is_ok(),
        "the consumer did not commit within {LIMIT:?}"
    );
}

/// After the kill: the effect is there once, and a second consumer of the
/// group delivers nothing — neither the witness nor the transactional
/// listener runs — once its backlog is empty (an unacknowledged event
/// would have been delivered to both before it is).
async fn second_consumer_sees_nothing<DB: Driver>(
    doomed_store: &SqlStore<DB>,
    second: SqlStore<DB>,
    table: &str,
    qualified: impl Fn(&str) -> String,
    first_fails: bool,
) where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let effects = format!("SELECT count(*) FROM {table}");
    assert_eq!(count(doomed_store, &effects).await, 1, "the commit's row");
    if first_fails {
        // The retry row is gone with the commit.
        let retries = format!("SELECT count(*) FROM {}", qualified("soiree_retries"));
        assert_eq!(count(doomed_store, &retries).await, 0, "retry row deleted");
    } else {
        // The bus never acknowledged: the lease is still there, with the
        // event acknowledged in it.
        let leases = format!("SELECT count(*) FROM {}", qualified("soiree_leases"));
        let acks = format!("SELECT count(*) FROM {}", qualified("soiree_lease_acks"));
        assert_eq!(count(doomed_store, &leases).await, 1, "the lease is held");
        assert_eq!(
            count(doomed_store, &acks).await,
            1,
            "its event acknowledged"
        );
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let witness = Arc::new(AtomicUsize::new(0));
    let bus = effect_bus(
        &second,
        table,
        Some(Arc::clone(&runs)),
        Some(Arc::clone(&witness)),
    );
    let leases = format!("SELECT count(*) FROM {}", qualified("soiree_leases"));
    let drained = eventually(LIMIT, || {
        let (second, leases) = (second.clone(), leases.clone());
        async move { second.backlog().await.ok() == Some(0) && count(&second, &leases).await == 0 }
    })
    .await;
    within(LIMIT, "idle", bus.wait_for_idle()).await;
    assert!(
        drained,
        "the lease left by the killed consumer was not settled"
    );
    assert_eq!(
        witness.load(Ordering::SeqCst),
        0,
        "the event was delivered again"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0, "the listener ran again");
    assert_eq!(count(&second, &effects).await, 1, "one row");
    within(LIMIT, "close", bus.close()).await.expect("close");
}

async fn sqlite_crash(first_fails: bool) {
    let dir = TempDir::new();
    let path = dir.db();
    let at = path.to_str().expect("utf-8 path").to_owned();
    let store = sqlite_store(&at, "producer", MetricsRegistry::new()).await;
    prepare(&store, "effects", first_fails).await;
    let mut command = ChildProcess::command();
    command
        .env(CHILD_ENV, "sqlite")
        .env("SOIREE_TX_AT", &at)
        .env("SOIREE_TX_TABLE", "effects");
    tokio::task::block_in_place(|| run_child_until_commit(command));
    let second = sqlite_store(&at, "second", MetricsRegistry::new()).await;
    second_consumer_sees_nothing(&store, second, "effects", str::to_owned, first_fails).await;
}

async fn postgres_crash(server: &PostgresServer, first_fails: bool) {
    let schema = fresh_schema();
    let url = server.url();
    let store = pg_store(&url, &schema, "producer", MetricsRegistry::new()).await;
    let table = format!("\"{schema}\".effects");
    prepare(&store, &table, first_fails).await;
    let mut command = ChildProcess::command();
    command
        .env(CHILD_ENV, "postgres")
        .env("SOIREE_TX_AT", &url)
        .env("SOIREE_SCHEMA", &schema)
        .env("SOIREE_TX_TABLE", &table);
    tokio::task::block_in_place(|| run_child_until_commit(command));
    let second = pg_store(&url, &schema, "second", MetricsRegistry::new()).await;
    let qualified = |name: &str| format!("\"{schema}\".{name}");
    second_consumer_sees_nothing(&store, second, &table, qualified, first_fails).await;
}

/// A counter's value in the registry's text form (0 when absent).
fn counter(registry: &MetricsRegistry, name: &str) -> f64 {
    registry
        .encode()
        .lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// In one process: the acknowledgement in the transaction, then the bus's
/// own, for a log event and a retry row: the effect once, nothing left in
/// the queue, no stale acknowledgement, no redelivery beyond the retry.
async fn later_ack_is_a_no_op<DB: Driver>(
    store: SqlStore<DB>,
    registry: &MetricsRegistry,
    table: &str,
    qualified: impl Fn(&str) -> String,
) where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut conn = store.pool().acquire().await.expect("connection");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE {table} (event_id TEXT NOT NULL)"
    )))
    .execute(&mut *conn)
    .await
    .expect("table");
    drop(conn);
    let runs = Arc::new(AtomicUsize::new(0));
    let bus = effect_bus(&store, table, Some(Arc::clone(&runs)), None);
    for first_fails in [false, true] {
        let mut emission = bus.emit("ack.job", json!({ "fail_first": first_fails }));
        within(LIMIT, "persisted", emission.persisted())
            .await
            .expect("persisted");
    }
    let effects = format!("SELECT count(*) FROM {table}");
    let leases = format!("SELECT count(*) FROM {}", qualified("soiree_leases"));
    let acks = format!("SELECT count(*) FROM {}", qualified("soiree_lease_acks"));
    let retries = format!("SELECT count(*) FROM {}", qualified("soiree_retries"));
    let settled = eventually(LIMIT, || {
        let store = store.clone();
        let (effects, leases, retries) = (effects.clone(), leases.clone(), retries.clone());
        async move {
            count(&store, &effects).await == 2
                && store.backlog().await.ok() == Some(0)
                && count(&store, &leases).await == 0
                && count(&store, &retries).await == 0
        }
    })
    .await;
    within(LIMIT, "idle", bus.wait_for_idle()).await;
    assert!(settled, "both events handled and settled");
    assert_eq!(count(&store, &acks).await, 0, "acks go with their lease");
    assert_eq!(runs.load(Ordering::SeqCst), 3, "two runs and one retry");
    assert_eq!(
        counter(registry, "soiree_store_stale_acks"),
        0.0,
        "the bus's acknowledgements were not stale"
    );
    assert_eq!(
        counter(registry, "soiree_store_redeliveries"),
        1.0,
        "only the retry row was delivered again"
    );
    within(LIMIT, "close", bus.close()).await.expect("close");
    assert_eq!(count(&store, &effects).await, 2);
}

async fn sqlite_in_process() {
    let dir = TempDir::new();
    let path = dir.db();
    let at = path.to_str().expect("utf-8 path").to_owned();
    let registry = MetricsRegistry::new();
    let store = sqlite_store(&at, "one", registry.clone()).await;
    later_ack_is_a_no_op(store, &registry, "effects", str::to_owned).await;
}

async fn postgres_in_process(server: &PostgresServer) {
    let schema = fresh_schema();
    let registry = MetricsRegistry::new();
    let store = pg_store(&server.url(), &schema, "one", registry.clone()).await;
    let table = format!("\"{schema}\".effects");
    let qualified = |name: &str| format!("\"{schema}\".{name}");
    later_ack_is_a_no_op(store, &registry, &table, qualified).await;
}
