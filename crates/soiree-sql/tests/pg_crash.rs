//! A consumer process killed with `kill -9` right after events were
//! committed: after a restart every event is handled.
//!
//! This test binary is its own consumer: started with `SOIREE_CRASH_CHILD`
//! set, it runs a bus on the store until killed, its listener recording each
//! handled event id in a table. The parent commits events with `emit_in`,
//! kills the consumer at once, starts another one, and checks from the table
//! that every committed event was handled.

mod support;

use std::time::Duration;

use serde_json::json;
use soiree::{EventBus, EventQueue};
use soiree_sql::PostgresStore;
use soiree_test::process::ChildProcess;
use sqlx::AssertSqlSafe;
use support::{PostgresServer, eventually, fresh_schema, within};

const CHILD_ENV: &str = "SOIREE_CRASH_CHILD";
const N: usize = 600;
const PER_TX: usize = 50;
const LEASE: Duration = Duration::from_secs(1);
const LIMIT: Duration = Duration::from_secs(90);

fn main() {
    support::process_test_main(
        "pg_crash",
        CHILD_ENV,
        child,
        &[("consumer_killed_right_after_commit", &|runtime, server| {
            runtime.block_on(consumer_killed_right_after_commit(server));
        })],
    );
}

async fn store(url: &str, schema: &str, consumer: &str) -> PostgresStore {
    PostgresStore::builder(url)
        .schema(schema)
        .consumer(consumer)
        .lease_timeout(LEASE)
        .poll_interval(Duration::from_millis(50))
        .metrics_registry(soiree::MetricsRegistry::new())
        .build()
        .await
        .expect("store")
}

/// A consumer: records each handled event id, slowly enough that events are
/// in flight when it is killed.
async fn child() {
    let url = std::env::var("SOIREE_PG_URL").expect("url");
    let schema = std::env::var("SOIREE_SCHEMA").expect("schema");
    let name = std::env::var(CHILD_ENV).expect("name");
    let store = store(&url, &schema, &name).await;
    let bus = EventBus::builder()
        .store(store.clone())
        .workers(4)
        .poll_wait(Duration::from_millis(200))
        .build()
        .expect("bus");
    let pool = store.pool().clone();
    let insert = format!("INSERT INTO \"{schema}\".handled (event_id, consumer) VALUES ($1, $2)");
    bus.on_named("record", "crash.*", move |ctx| {
        let (pool, insert, name) = (pool.clone(), insert.clone(), name.clone());
        async move {
            sqlx::query(AssertSqlSafe(insert))
                .bind(ctx.event_id().unwrap_or_default())
                .bind(name)
                .execute(&pool)
                .await?;
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok(())
        }
    })
    .expect("listener");
    bus.start().expect("start");
    // Run until killed.
    std::future::pending::<()>().await;
}

fn spawn_child(server: &PostgresServer, schema: &str, name: &str) -> ChildProcess {
    ChildProcess::start(
        ChildProcess::command()
            .env(CHILD_ENV, name)
            .env("SOIREE_PG_URL", server.url())
            .env("SOIREE_SCHEMA", schema),
    )
}

async fn handled(store: &PostgresStore) -> (i64, i64) {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT count(DISTINCT event_id), count(*) FROM \"{}\".handled",
        store.schema()
    )))
    .fetch_one(store.pool())
    .await
    .expect("count")
}

async fn consumer_killed_right_after_commit(server: &PostgresServer) {
    let schema = fresh_schema();
    let producer = store(&server.url(), &schema, "producer").await;
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE \"{schema}\".handled (event_id text NOT NULL, consumer text NOT NULL)"
    )))
    .execute(producer.pool())
    .await
    .expect("table");

    let mut first = spawn_child(server, &schema, "first");
    // Let the first consumer start listening, then commit every event.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ids = Vec::new();
    for chunk in 0..N / PER_TX {
        let mut tx = within(LIMIT, "begin", producer.begin())
            .await
            .expect("begin");
        let batch = (0..PER_TX).map(|n| ("crash.job", json!({ "n": chunk * PER_TX + n })));
        ids.extend(producer.emit_all_in(&mut tx, batch).await.expect("emit_in"));
        within(LIMIT, "commit", producer.commit(tx))
            .await
            .expect("commit");
    }
    // Killed right after the last commit, with events leased and in flight.
    first.kill(); // kill -9, reaped
    let (before, _) = handled(&producer).await;

    let mut second = spawn_child(server, &schema, "second");
    let all = eventually(LIMIT, || async { handled(&producer).await.0 >= N as i64 }).await;
    let backlog_clear =
        all && eventually(LIMIT, || async { producer.backlog().await.ok() == Some(0) }).await;
    second.kill();
    let (distinct, rows) = handled(&producer).await;
    println!(
        "emitted={N} handled_before_kill={before} handled={distinct} handler_runs={rows} duplicates={}",
        rows - distinct
    );
    assert_eq!(ids.len(), N);
    assert!(all, "only {distinct} of {N} committed events were handled");
    assert!(backlog_clear, "the backlog did not drain");
    let missing: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM unnest($1::text[]) AS id \
         WHERE id NOT IN (SELECT event_id FROM \"{schema}\".handled)"
    )))
    .bind(&ids)
    .fetch_one(producer.pool())
    .await
    .expect("missing");
    assert_eq!(missing, 0, "committed events were never handled");
}
