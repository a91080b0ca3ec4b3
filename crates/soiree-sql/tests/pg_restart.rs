//! A consumer process killed with `kill -9` while it holds leases, restarted
//! on the same host under its default consumer name: it handles its leased
//! events at once, although their lease would last an hour.
//!
//! This test binary is its own consumer: started with `SOIREE_RESTART_CHILD`
//! set, it runs a bus on a store with the default consumer name and a lease
//! timeout of an hour until killed, its listener recording each handled
//! event id and the consumer name in a table, slowly. The parent commits the
//! events, kills the consumer once it has handled some, starts it again, and
//! checks from the table that every event was handled, by consumers of the
//! same name, well before any lease could expire.

mod support;

use std::time::Duration;

use serde_json::json;
use soiree::EventBus;
use soiree_sql::PostgresStore;
use soiree_test::process::ChildProcess;
use sqlx::AssertSqlSafe;
use support::{PostgresServer, eventually, fresh_schema, within};

const CHILD_ENV: &str = "SOIREE_RESTART_CHILD";
const N: usize = 200;
/// Longer than the whole test may take: a restart that waited for its
/// leases to expire would fail it.
const LEASE: Duration = Duration::from_secs(3600);
const LIMIT: Duration = Duration::from_secs(60);

fn main() {
    support::process_test_main(
        "pg_restart",
        CHILD_ENV,
        child,
        &[(
            "restarted_consumer_takes_its_leases_back_at_once",
            &|runtime, server| {
                runtime.block_on(restarted_consumer_takes_its_leases_back_at_once(server));
            },
        )],
    );
}

/// A store with the default consumer name (no `consumer(…)`).
async fn store(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::builder(url)
        .schema(schema)
        .lease_timeout(LEASE)
        .poll_interval(Duration::from_millis(50))
        .metrics_registry(soiree::MetricsRegistry::new())
        .build()
        .await
        .expect("store")
}

/// A consumer: records each handled event id with its consumer name,
/// slowly enough that most events are leased and unhandled when it is
/// killed.
async fn child() {
    let url = std::env::var("SOIREE_PG_URL").expect("url");
    let schema = std::env::var("SOIREE_SCHEMA").expect("schema");
    let store = store(&url, &schema).await;
    let name = store.consumer_name().to_owned();
    let bus = EventBus::builder()
        .store(store.clone())
        .workers(2)
        .poll_wait(Duration::from_millis(200))
        .build()
        .expect("bus");
    let pool = store.pool().clone();
    let insert = format!("INSERT INTO \"{schema}\".handled (event_id, consumer) VALUES ($1, $2)");
    bus.on_named("record", "restart.*", move |ctx| {
        let (pool, insert, name) = (pool.clone(), insert.clone(), name.clone());
        async move {
            sqlx::query(AssertSqlSafe(insert))
                .bind(ctx.event_id().unwrap_or_default())
                .bind(name)
                .execute(&pool)
                .await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(())
        }
    })
    .expect("listener");
    bus.start().expect("start");
    // Run until killed.
    std::future::pending::<()>().await;
}

fn spawn_child(server: &PostgresServer, schema: &str) -> ChildProcess {
    ChildProcess::start(
        ChildProcess::command()
            .env(CHILD_ENV, "1")
            .env("SOIREE_PG_URL", server.url())
            .env("SOIREE_SCHEMA", schema),
    )
}

async fn handled(producer: &PostgresStore) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(DISTINCT event_id) FROM \"{}\".handled",
        producer.schema()
    )))
    .fetch_one(producer.pool())
    .await
    .expect("count")
}

async fn restarted_consumer_takes_its_leases_back_at_once(server: &PostgresServer) {
    let schema = fresh_schema();
    // An explicit name: the producer holds no slot of the consumers.
    let producer = PostgresStore::builder(&server.url())
        .schema(&schema)
        .consumer("producer")
        .metrics_registry(soiree::MetricsRegistry::new())
        .build()
        .await
        .expect("producer");
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE \"{schema}\".handled (event_id text NOT NULL, consumer text NOT NULL)"
    )))
    .execute(producer.pool())
    .await
    .expect("table");
    let mut tx = within(LIMIT, "begin", producer.begin())
        .await
        .expect("begin");
    let batch = (0..N).map(|n| ("restart.job", json!({ "n": n })));
    let ids = producer.emit_all_in(&mut tx, batch).await.expect("emit_in");
    within(LIMIT, "commit", producer.commit(tx))
        .await
        .expect("commit");

    let mut first = spawn_child(server, &schema);
    let started = eventually(LIMIT, || async { handled(&producer).await >= 10 }).await;
    // Killed with events leased and unhandled.
    first.kill(); // kill -9, reaped
    assert!(started, "the first consumer handled nothing");
    let before = handled(&producer).await;
    let leased: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".soiree_leases WHERE expires_at > now()"
    )))
    .fetch_one(producer.pool())
    .await
    .expect("leases");
    assert!(
        before < N as i64 && leased > 0,
        "the consumer was killed with nothing leased ({before} of {N} handled, {leased} leases)"
    );

    let mut second = spawn_child(server, &schema);
    let all = eventually(LIMIT, || async { handled(&producer).await >= N as i64 }).await;
    second.kill();
    let names: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT DISTINCT consumer FROM \"{schema}\".handled"
    )))
    .fetch_all(producer.pool())
    .await
    .expect("names");
    let distinct = handled(&producer).await;
    println!("emitted={N} handled_before_kill={before} handled={distinct} consumers={names:?}");
    assert_eq!(ids.len(), N);
    assert!(
        all,
        "only {distinct} of {N} events were handled within {LIMIT:?} of the restart: the \
         restarted consumer waited for its leases ({LEASE:?}) to expire"
    );
    assert_eq!(
        names.len(),
        1,
        "the restarted consumer got another name: {names:?}"
    );
}
