//! Three consumer processes share one group on PostgreSQL. In a clean run
//! every event is handled exactly once; in a run where one consumer is
//! killed with `kill -9` mid-run, every event is still handled (the dead
//! consumer's leases expire and the others take them over), and the count
//! of duplicates is reported.
//!
//! This test binary is its own consumer: started with `SOIREE_SCALE_CHILD`
//! set, it runs a bus whose listener records each handled event id in a
//! table, until its stdin closes (then it closes the bus and exits) or it is
//! killed.

mod support;

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::json;
use soiree::{EventBus, EventQueue};
use soiree_sql::PostgresStore;
use sqlx::AssertSqlSafe;
use support::{PostgresServer, eventually, fresh_schema, within};

const CHILD_ENV: &str = "SOIREE_SCALE_CHILD";
const CONSUMERS: usize = 3;
const N: usize = 3000;
const PER_TX: usize = 100;
const LEASE: Duration = Duration::from_secs(1);
const LIMIT: Duration = Duration::from_secs(120);

fn main() {
    support::process_test_main(
        "pg_scale_out",
        CHILD_ENV,
        child,
        &[
            ("three_consumers_clean_run", &|runtime, server| {
                runtime.block_on(run(server, None));
            }),
            ("three_consumers_one_killed_mid_run", &|runtime, server| {
                runtime.block_on(run(server, Some(0)));
            }),
        ],
    );
}

async fn store(url: &str, schema: &str, consumer: &str) -> PostgresStore {
    within(
        LIMIT,
        "build a store",
        PostgresStore::builder(url)
            .schema(schema)
            .consumer(consumer)
            .lease_timeout(LEASE)
            .batch_size(100)
            .poll_interval(Duration::from_millis(50))
            .metrics_registry(soiree::MetricsRegistry::new())
            .build(),
    )
    .await
    .expect("store")
}

/// A consumer: records each handled event id until its stdin closes.
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
    bus.on_named("record", "scale.*", move |ctx| {
        let (pool, insert, name) = (pool.clone(), insert.clone(), name.clone());
        async move {
            sqlx::query(AssertSqlSafe(insert))
                .bind(ctx.event_id().unwrap_or_default())
                .bind(name)
                .execute(&pool)
                .await?;
            Ok(())
        }
    })
    .expect("listener");
    bus.start().expect("start");
    // Runs until the parent closes stdin (or kills it).
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::stdin().read_to_end(&mut sink)
    })
    .await;
    within(LIMIT, "close", bus.close())
        .await
        .expect("close the bus");
}

/// The consumer processes; killed if still running when dropped.
struct Consumers(Vec<Child>);

impl Consumers {
    fn spawn(server: &PostgresServer, schema: &str) -> Self {
        Self(
            (0..CONSUMERS)
                .map(|i| {
                    soiree_test::process::ChildProcess::command()
                        .env(CHILD_ENV, format!("consumer-{i}"))
                        .env("SOIREE_PG_URL", server.url())
                        .env("SOIREE_SCHEMA", schema)
                        .stdin(Stdio::piped())
                        .spawn()
                        .expect("spawn a consumer")
                })
                .collect(),
        )
    }

    /// Closes the stdin of those still running and waits for them to exit.
    fn stop(&mut self) {
        for child in &mut self.0 {
            drop(child.stdin.take());
        }
        for child in &mut self.0 {
            let deadline = std::time::Instant::now() + LIMIT;
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Consumers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `(distinct event ids, rows, consumers that handled any)` of the table.
async fn handled(store: &PostgresStore) -> (i64, i64, i64) {
    within(
        LIMIT,
        "count",
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT count(DISTINCT event_id), count(*), count(DISTINCT consumer) FROM \"{}\".handled",
            store.schema()
        )))
        .fetch_one(store.pool()),
    )
    .await
    .expect("count")
}

/// How many events `consumer` handled.
async fn handled_by(store: &PostgresStore, consumer: &str) -> i64 {
    within(
        LIMIT,
        "count",
        sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{}\".handled WHERE consumer = $1",
            store.schema()
        )))
        .bind(consumer)
        .fetch_one(store.pool()),
    )
    .await
    .expect("count")
}

async fn run(server: &PostgresServer, kill: Option<usize>) {
    let schema = fresh_schema();
    let producer = store(&server.url(), &schema, "producer").await;
    within(
        LIMIT,
        "table",
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE \"{schema}\".handled (event_id text NOT NULL, consumer text NOT NULL)"
        )))
        .execute(producer.pool()),
    )
    .await
    .expect("table");
    let mut consumers = Consumers::spawn(server, &schema);
    let mut ids = Vec::new();
    let mut killed_at = None;
    for chunk in 0..N / PER_TX {
        let mut tx = within(LIMIT, "begin", producer.begin())
            .await
            .expect("begin");
        let batch = (0..PER_TX).map(|n| ("scale.job", json!({ "n": chunk * PER_TX + n })));
        ids.extend(
            within(LIMIT, "emit_in", producer.emit_all_in(&mut tx, batch))
                .await
                .expect("emit_in"),
        );
        within(LIMIT, "commit", producer.commit(tx))
            .await
            .expect("commit");
        // Mid-run: once a third is committed and some of it handled.
        if let Some(victim) = kill
            && killed_at.is_none()
            && chunk == N / PER_TX / 3
        {
            // The victim is working: it has handled some events and holds
            // leases of the rest.
            let working = eventually(LIMIT, || async {
                handled_by(&producer, &format!("consumer-{victim}")).await >= 20
            })
            .await;
            assert!(working, "the victim handled nothing before the kill");
            consumers.0[victim].kill().expect("kill -9");
            consumers.0[victim].wait().expect("reap");
            killed_at = Some(handled(&producer).await.0);
        }
    }
    let all = eventually(LIMIT, || async { handled(&producer).await.0 >= N as i64 }).await;
    let drained = all
        && eventually(LIMIT, || async {
            within(LIMIT, "backlog", producer.backlog()).await.ok() == Some(0)
        })
        .await;
    tokio::task::block_in_place(|| consumers.stop());
    let (distinct, rows, by) = handled(&producer).await;
    println!(
        "consumers={CONSUMERS} killed={} emitted={N} handled_at_kill={} handled={distinct} handler_runs={rows} duplicates={} consumers_that_handled={by}",
        kill.is_some(),
        killed_at.map_or_else(|| "-".to_owned(), |n| n.to_string()),
        rows - distinct
    );
    assert_eq!(ids.len(), N);
    assert!(all, "only {distinct} of {N} committed events were handled");
    assert!(drained, "the backlog did not drain");
    let missing: i64 = within(
        LIMIT,
        "missing",
        sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM unnest($1::text[]) AS id \
             WHERE id NOT IN (SELECT event_id FROM \"{schema}\".handled)"
        )))
        .bind(&ids)
        .fetch_one(producer.pool()),
    )
    .await
    .expect("missing");
    assert_eq!(missing, 0, "committed events were never handled");
    assert_eq!(distinct, N as i64);
    if kill.is_none() {
        assert_eq!(rows, N as i64, "a clean run handles each event once");
    }
}
