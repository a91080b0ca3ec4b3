//! Retention on PostgreSQL by whole partitions: the log is partitioned by
//! range of id; partitions that every group passed, that no lease covers and
//! that are older than the window are truncated and dropped, the DEFAULT
//! partition catches ids beyond the partitions created ahead, and the
//! migration turns an existing log into the first partition, losing nothing.

#![cfg(feature = "postgres")]

mod support;

use std::str::FromStr;
use std::time::Duration;

use serde_json::json;
use soiree::{EventHistory, EventQueue};
use soiree_sql::PostgresStore;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};
use support::{PostgresServer, within};

const LIMIT: Duration = Duration::from_secs(30);

/// A store of `group` in `schema` with partitions of 100 ids and leases of
/// at most 50 events.
async fn store(server: &PostgresServer, schema: &str, group: &str) -> PostgresStore {
    within(
        LIMIT,
        "build",
        support::pg_builder_in(server, schema, group)
            .group(group)
            .batch_size(50)
            .partition_size(100)
            .build(),
    )
    .await
    .unwrap()
}

/// Appends the events numbered `from..to` (payload `{"n": n}`) in one
/// transaction.
async fn append(store: &PostgresStore, from: u64, to: u64) {
    let mut tx = within(LIMIT, "begin", store.begin()).await.unwrap();
    within(
        LIMIT,
        "emit",
        store.emit_all_in(
            &mut tx,
            (from..to).map(|n| ("test.part", json!({ "n": n, "pad": "x".repeat(200) }))),
        ),
    )
    .await
    .unwrap();
    within(LIMIT, "commit", store.commit(tx)).await.unwrap();
}

/// Takes `n` deliveries (without acknowledging them); returns their receipts
/// and event numbers.
async fn take(store: &PostgresStore, n: usize) -> (Vec<String>, Vec<u64>) {
    let mut receipts = Vec::new();
    let mut numbers = Vec::new();
    while receipts.len() < n {
        let batch = within(LIMIT, "dequeue", store.dequeue(n - receipts.len(), LIMIT))
            .await
            .unwrap();
        assert!(!batch.is_empty(), "nothing to take");
        for delivery in batch {
            receipts.push(delivery.receipt);
            numbers.push(delivery.event.payload["n"].as_u64().unwrap());
        }
    }
    (receipts, numbers)
}

/// Takes and acknowledges `n` deliveries; returns their event numbers.
async fn consume(store: &PostgresStore, n: usize) -> Vec<u64> {
    let (receipts, numbers) = take(store, n).await;
    within(LIMIT, "ack", store.ack(&receipts)).await.unwrap();
    numbers
}

async fn prune(store: &PostgresStore, window: Duration) -> u64 {
    within(LIMIT, "prune", store.prune_consumed(window))
        .await
        .unwrap()
}

async fn ahead(store: &PostgresStore) -> u32 {
    within(LIMIT, "partitions", store.create_partitions_ahead())
        .await
        .unwrap()
}

/// The partitions of the log: name and (for range partitions) bounds.
async fn partitions(store: &PostgresStore) -> Vec<(String, String)> {
    let mut parts: Vec<(String, String)> = within(
        LIMIT,
        "partitions",
        sqlx::query_as(
            "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid) \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = to_regclass($1)",
        )
        .bind(format!("\"{}\".soiree_events", store.schema()))
        .fetch_all(store.pool()),
    )
    .await
    .unwrap();
    parts.sort();
    parts
}

async fn names(store: &PostgresStore) -> Vec<String> {
    partitions(store)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

async fn scalar(pool: &PgPool, sql: String) -> i64 {
    within(
        LIMIT,
        "query",
        sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(pool),
    )
    .await
    .unwrap()
}

async fn rows_in(store: &PostgresStore, table: &str) -> i64 {
    scalar(
        store.pool(),
        format!("SELECT count(*) FROM \"{}\".{table}", store.schema()),
    )
    .await
}

/// Bytes of the log and all its partitions, indexes and TOAST included.
async fn log_bytes(store: &PostgresStore) -> i64 {
    scalar(
        store.pool(),
        format!(
            "SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint \
             FROM pg_partition_tree('\"{}\".soiree_events')",
            store.schema()
        ),
    )
    .await
}

/// The numbers of the events still in the log, in log order.
async fn kept(store: &PostgresStore) -> Vec<u64> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = within(LIMIT, "events", store.events(cursor.as_deref(), 1000))
            .await
            .unwrap();
        out.extend(page.items.iter().map(|e| e.payload["n"].as_u64().unwrap()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// The highest upper bound of the range partitions.
async fn covered_to(store: &PostgresStore) -> i64 {
    scalar(
        store.pool(),
        format!(
            "SELECT max(substring(pg_get_expr(c.relpartbound, c.oid) \
               FROM 'TO \\(''?(\\d+)')::bigint) \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = '\"{}\".soiree_events'::regclass",
            store.schema()
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumed_partitions_are_dropped_whole() {
    let server = pg_or_skip!();
    let schema = support::fresh_schema();
    let a = store(&server, &schema, "a").await;
    let b = store(&server, &schema, "b").await;
    // Nobody prunes yet: no partitions, the log is its DEFAULT partition.
    assert_eq!(names(&a).await, ["soiree_events_default"]);
    assert_eq!(ahead(&a).await, 2);
    assert_eq!(ahead(&b).await, 0, "idempotent");
    assert_eq!(covered_to(&a).await, 201);

    // 550 events, ids 1..=550 (event n has id n + 1); partitions are
    // created ahead as the ids grow.
    for chunk in 0..11 {
        append(&a, chunk * 50, chunk * 50 + 50).await;
        ahead(&a).await;
        let next = i64::try_from(chunk * 50 + 51).unwrap();
        assert!(covered_to(&a).await >= next + 200, "two spans ahead");
    }
    assert_eq!(rows_in(&a, "soiree_events_default").await, 0);
    for lo in [1, 101, 201, 301, 401, 501] {
        assert!(
            names(&a).await.contains(&format!("soiree_events_p{lo}")),
            "p{lo}"
        );
    }
    let bytes_full = log_bytes(&a).await;

    // a consumes everything, b the first 250 only.
    assert_eq!(consume(&a, 550).await, (0..550).collect::<Vec<_>>());
    assert_eq!(consume(&b, 250).await, (0..250).collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_millis(20)).await;
    // b's cursor (id 250) keeps p201 (ids 201..=300) and everything after.
    assert_eq!(prune(&a, Duration::ZERO).await, 200);
    let parts = names(&a).await;
    assert!(!parts.contains(&"soiree_events_p1".to_owned()), "{parts:?}");
    assert!(
        !parts.contains(&"soiree_events_p101".to_owned()),
        "{parts:?}"
    );
    assert!(
        parts.contains(&"soiree_events_p201".to_owned()),
        "{parts:?}"
    );
    assert_eq!(kept(&a).await, (200..550).collect::<Vec<_>>());
    assert!(
        log_bytes(&a).await < bytes_full,
        "dropped partitions give space back"
    );
    assert_eq!(prune(&a, Duration::ZERO).await, 0, "nothing more");

    // b leases 251..=300 and acknowledges half: its cursor passed p201, but
    // the lease keeps it.
    let (receipts, numbers) = take(&b, 50).await;
    assert_eq!(numbers, (250..300).collect::<Vec<_>>());
    within(LIMIT, "ack", b.ack(&receipts[..25])).await.unwrap();
    assert_eq!(prune(&a, Duration::ZERO).await, 0);
    assert!(names(&a).await.contains(&"soiree_events_p201".to_owned()));
    within(LIMIT, "ack", b.ack(&receipts[25..])).await.unwrap();
    // Consumed by every group, but younger than the window: kept.
    assert_eq!(prune(&a, Duration::from_secs(3600)).await, 0);
    assert_eq!(prune(&a, Duration::ZERO).await, 100);
    assert!(!names(&a).await.contains(&"soiree_events_p201".to_owned()));
    assert_eq!(kept(&a).await, (300..550).collect::<Vec<_>>());

    // b catches up: everything goes; p501 (ids up to 600, not all handed
    // out) is truncated and kept for the next appends.
    assert_eq!(consume(&b, 250).await, (300..550).collect::<Vec<_>>());
    assert_eq!(prune(&a, Duration::ZERO).await, 250);
    assert!(kept(&a).await.is_empty());
    let parts = names(&a).await;
    for gone in ["p301", "p401"] {
        assert!(
            !parts.contains(&format!("soiree_events_{gone}")),
            "{parts:?}"
        );
    }
    assert!(
        parts.contains(&"soiree_events_p501".to_owned()),
        "{parts:?}"
    );
    assert_eq!(rows_in(&a, "soiree_events_p501").await, 0);
    assert!(log_bytes(&a).await < bytes_full / 2, "space given back");

    // The log goes on in the kept partition.
    append(&a, 550, 560).await;
    assert_eq!(rows_in(&a, "soiree_events_p501").await, 10);
    assert_eq!(consume(&a, 10).await, (550..560).collect::<Vec<_>>());
    assert_eq!(consume(&b, 10).await, (550..560).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stores_create_and_prune_each_partition_once() {
    let server = pg_or_skip!();
    let schema = support::fresh_schema();
    let a = store(&server, &schema, "a").await;
    let b = store(&server, &schema, "b").await;
    let (w, x, y, z) = tokio::join!(ahead(&a), ahead(&b), ahead(&a), ahead(&b));
    assert_eq!(w + x + y + z, 2, "created once");
    for chunk in 0..10 {
        append(&a, chunk * 50, chunk * 50 + 50).await;
        tokio::join!(ahead(&a), ahead(&b));
    }
    assert_eq!(rows_in(&a, "soiree_events_default").await, 0);
    let mut numbers = Vec::new();
    for _ in 0..10 {
        numbers.extend(consume(&a, 50).await);
        consume(&b, 50).await;
    }
    assert_eq!(numbers, (0..500).collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (x, y) = tokio::join!(prune(&a, Duration::ZERO), prune(&b, Duration::ZERO));
    assert_eq!(x + y, 500, "each event counted once");
    assert!(kept(&a).await.is_empty());
    // A drop that lost the race for the log's lock is done by a later run.
    assert_eq!(prune(&a, Duration::ZERO).await, 0);
    let parts = names(&a).await;
    for lo in [1, 101, 201, 301, 401] {
        assert!(
            !parts.contains(&format!("soiree_events_p{lo}")),
            "{parts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconsumed_events_keep_their_partition() {
    let server = pg_or_skip!();
    let schema = support::fresh_schema();
    let a = store(&server, &schema, "a").await;
    ahead(&a).await;
    append(&a, 0, 150).await;
    ahead(&a).await;
    // a consumed 120: p1 goes, p101 (ids 101..=200) holds unconsumed events.
    assert_eq!(consume(&a, 50).await, (0..50).collect::<Vec<_>>());
    assert_eq!(consume(&a, 50).await, (50..100).collect::<Vec<_>>());
    assert_eq!(consume(&a, 20).await, (100..120).collect::<Vec<_>>());
    assert_eq!(prune(&a, Duration::ZERO).await, 100);
    assert_eq!(kept(&a).await, (100..150).collect::<Vec<_>>());
    // A group created now starts at the beginning of what is kept, and
    // holds it.
    let late = store(&server, &schema, "late").await;
    assert_eq!(consume(&a, 30).await, (120..150).collect::<Vec<_>>());
    assert_eq!(prune(&a, Duration::ZERO).await, 0);
    assert_eq!(consume(&late, 50).await, (100..150).collect::<Vec<_>>());
    assert_eq!(prune(&a, Duration::ZERO).await, 50);
    assert!(kept(&a).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_partition_catches_what_no_partition_covers() {
    let server = pg_or_skip!();
    let schema = support::fresh_schema();
    let a = store(&server, &schema, "a").await;
    ahead(&a).await;
    assert_eq!(covered_to(&a).await, 201);
    // One burst past the partitions: ids 201..=450 land in DEFAULT.
    append(&a, 0, 450).await;
    assert_eq!(rows_in(&a, "soiree_events_default").await, 250);
    // Creation catches up from the next id (DEFAULT keeps its rows).
    assert!(ahead(&a).await >= 2);
    assert!(names(&a).await.contains(&"soiree_events_p451".to_owned()));
    assert_eq!(rows_in(&a, "soiree_events_default").await, 250);
    // Every event is delivered, in order, wherever it is stored.
    let mut numbers = Vec::new();
    for _ in 0..9 {
        numbers.extend(consume(&a, 50).await);
    }
    assert_eq!(numbers, (0..450).collect::<Vec<_>>());
    append(&a, 450, 460).await;
    assert_eq!(rows_in(&a, "soiree_events_p451").await, 10);
    assert_eq!(consume(&a, 10).await, (450..460).collect::<Vec<_>>());
    // Partitions go whole, DEFAULT by batched delete.
    assert_eq!(prune(&a, Duration::ZERO).await, 460);
    assert_eq!(rows_in(&a, "soiree_events_default").await, 0);
    assert!(kept(&a).await.is_empty());
    let parts = names(&a).await;
    assert!(!parts.contains(&"soiree_events_p1".to_owned()), "{parts:?}");
    assert!(
        parts.contains(&"soiree_events_p451".to_owned()),
        "{parts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_retention_starts_in_partitions() {
    let server = pg_or_skip!();
    let schema = support::fresh_schema();
    let a = within(
        LIMIT,
        "build",
        support::pg_builder_in(&server, &schema, "a")
            .partition_size(1000)
            .retention(Duration::from_secs(3600))
            .build(),
    )
    .await
    .unwrap();
    assert!(names(&a).await.contains(&"soiree_events_p1".to_owned()));
    append(&a, 0, 5).await;
    assert_eq!(rows_in(&a, "soiree_events_p1").await, 5);
    assert_eq!(rows_in(&a, "soiree_events_default").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_turns_an_existing_log_into_a_partition() {
    let server = pg_or_skip!();
    let schema = support::fresh_schema();
    // Migrations 0001 and 0002 only, as an older release applied them.
    let connect = PgConnectOptions::from_str(&server.url())
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let pool = within(
        LIMIT,
        "connect",
        PgPoolOptions::new()
            .max_connections(2)
            .connect_with(connect),
    )
    .await
    .unwrap();
    scalar_exec(&pool, format!("CREATE SCHEMA \"{schema}\"")).await;
    let all = within(
        LIMIT,
        "migrations",
        sqlx::migrate::Migrator::new(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/migrations/postgres"
        ))),
    )
    .await
    .unwrap();
    let mut old = sqlx::migrate::Migrator::with_migrations(
        all.iter().filter(|m| m.version <= 2).cloned().collect(),
    );
    old.dangerous_set_table_name(format!("\"{schema}\".{}", soiree_sql::MIGRATIONS_TABLE));
    within(LIMIT, "migrate", old.run(&pool)).await.unwrap();
    // 300 events, a group that read the first 100, and 10 ids handed out to
    // a transaction that rolled back.
    scalar_exec(
        &pool,
        "INSERT INTO soiree_events (topic, event_id, payload, properties) \
         SELECT 'test.part', 'e' || g, json_build_object('n', g, 'pad', repeat('x', 200)), '{}'::json \
         FROM generate_series(0, 299) g"
            .to_owned(),
    )
    .await;
    scalar_exec(
        &pool,
        "INSERT INTO soiree_cursors (group_name, claimed_tx, claimed_id) \
         SELECT 'old', tx, id FROM soiree_events WHERE id = 100"
            .to_owned(),
    )
    .await;
    let mut tx = within(LIMIT, "begin", pool.begin()).await.unwrap();
    within(
        LIMIT,
        "insert",
        sqlx::query("INSERT INTO soiree_events (topic) SELECT 'gone' FROM generate_series(1, 10)")
            .execute(&mut *tx),
    )
    .await
    .unwrap();
    within(LIMIT, "rollback", tx.rollback()).await.unwrap();
    let bytes_before: i64 = scalar(
        &pool,
        "SELECT pg_total_relation_size('soiree_events')".to_owned(),
    )
    .await;

    // The store applies the rest.
    let old_group = store(&server, &schema, "old").await;
    let parts = partitions(&old_group).await;
    assert!(
        parts.contains(&(
            "soiree_events_legacy".to_owned(),
            "FOR VALUES FROM (MINVALUE) TO ('311')".to_owned()
        )),
        "{parts:?}"
    );
    assert_eq!(rows_in(&old_group, "soiree_events").await, 300);
    assert_eq!(rows_in(&old_group, "soiree_events_legacy").await, 300);
    // Ids go on from where the identity stopped.
    append(&old_group, 300, 301).await;
    assert_eq!(
        scalar(&pool, "SELECT max(id) FROM soiree_events".to_owned()).await,
        311
    );
    // The old group goes on from its cursor, a new one reads everything.
    let mut numbers = Vec::new();
    for _ in 0..4 {
        numbers.extend(consume(&old_group, 50).await);
    }
    numbers.extend(consume(&old_group, 1).await);
    assert_eq!(numbers, (100..301).collect::<Vec<_>>());
    let fresh = store(&server, &schema, "fresh").await;
    let mut numbers = Vec::new();
    for _ in 0..6 {
        numbers.extend(consume(&fresh, 50).await);
    }
    numbers.extend(consume(&fresh, 1).await);
    assert_eq!(numbers, (0..301).collect::<Vec<_>>());
    assert_eq!(kept(&fresh).await, (0..301).collect::<Vec<_>>());

    // The legacy partition goes whole, the event after it from DEFAULT.
    assert_eq!(prune(&fresh, Duration::ZERO).await, 301);
    assert!(
        !names(&fresh)
            .await
            .contains(&"soiree_events_legacy".to_owned())
    );
    assert!(log_bytes(&fresh).await < bytes_before);
    // New events land in partitions now.
    append(&fresh, 301, 302).await;
    assert_eq!(rows_in(&fresh, "soiree_events_default").await, 0);
    assert_eq!(consume(&old_group, 1).await, [301]);
    assert_eq!(consume(&fresh, 1).await, [301]);
    pool.close().await;
}

async fn scalar_exec(pool: &PgPool, sql: String) {
    within(LIMIT, "exec", sqlx::query(AssertSqlSafe(sql)).execute(pool))
        .await
        .unwrap();
}
