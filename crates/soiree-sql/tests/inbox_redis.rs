//! The inbox makes a listener's SQL side effects effectively once on a bus
//! whose events come from Redis: a run that committed its work and then
//! failed (as a crash before the success record would) is run again, finds
//! its inbox row and skips the work; one row in the application's table.

#![cfg(feature = "sqlite")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::{Backoff, EventBus, RetryPolicy};
use soiree_redis::RedisStore;
use soiree_sql::{Inbox, sqlx};
use soiree_test::redis::RedisServer;
use support::{TempDir, eventually, within};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_skips_work_its_inbox_recorded() {
    let Some(server) = RedisServer::start_or_skip() else {
        return;
    };
    let dir = TempDir::new();
    let url = format!("sqlite://{}?mode=rwc", dir.db().display());
    let pool = within(LIMIT, "sqlite", sqlx::SqlitePool::connect(&url))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE invoices (event_id TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let inbox = Inbox::<sqlx::Sqlite>::new("billing").unwrap();
    inbox
        .create_table(&mut pool.acquire().await.unwrap())
        .await
        .unwrap();

    let store = within(
        LIMIT,
        "redis store",
        RedisStore::builder(&server.url())
            .group("billing")
            .metrics_registry(soiree::MetricsRegistry::new())
            .build(),
    )
    .await
    .unwrap();
    let retry = RetryPolicy::attempts(3)
        .unwrap()
        .with_backoff(Backoff::constant(Duration::from_millis(10)));
    let bus = EventBus::builder()
        .store(store)
        .retry(retry)
        .build()
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let skipped = Arc::new(AtomicUsize::new(0));
    {
        let (runs, skipped, pool) = (Arc::clone(&runs), Arc::clone(&skipped), pool.clone());
        bus.on_named("invoice", "order.paid", move |ctx| {
            let (runs, skipped, pool, inbox) = (
                Arc::clone(&runs),
                Arc::clone(&skipped),
                pool.clone(),
                inbox.clone(),
            );
            async move {
                let first = runs.fetch_add(1, Ordering::SeqCst) == 0;
                let mut tx = pool.begin().await?;
                if !inbox.receive(&mut tx, &ctx).await? {
                    skipped.fetch_add(1, Ordering::SeqCst);
                    return Ok(());
                }
                sqlx::query("INSERT INTO invoices (event_id) VALUES ($1)")
                    .bind(ctx.event_id())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                if first {
                    // Committed, but no success recorded: run again.
                    return Err("lost after the commit".into());
                }
                Ok(())
            }
        })
        .unwrap();
    }
    bus.start().unwrap();
    let mut emission = bus.emit("order.paid", serde_json::json!({ "order": 7 }));
    within(LIMIT, "persisted", emission.persisted())
        .await
        .unwrap();
    let settled = eventually(LIMIT, || async { skipped.load(Ordering::SeqCst) == 1 }).await;
    within(LIMIT, "close", bus.close()).await.unwrap();
    assert!(settled, "the second run found its inbox row");
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the listener ran twice");
    let invoices: i64 = sqlx::query_scalar("SELECT count(*) FROM invoices")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(invoices, 1, "its side effect committed once");
}
