//! The SQLite store: transactional emit, fencing, and events surviving a
//! reopen of the file.

#![cfg(feature = "sqlite")]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use soiree::{EventBus, EventHistory, EventQueue};
use soiree_sql::SqliteStore;
use support::{TempDir, eventually, sqlite_builder, within};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_events_are_delivered_and_rolled_back_ones_never() {
    let dir = TempDir::new();
    let store = sqlite_builder(&dir.db(), "outbox").build().await.unwrap();
    sqlx::query("CREATE TABLE users (name TEXT PRIMARY KEY)")
        .execute(store.pool())
        .await
        .unwrap();
    let bus = EventBus::builder().store(store.clone()).build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = Arc::clone(&seen);
    bus.on_named("record", "outbox.**", move |ctx| {
        let recorder = Arc::clone(&recorder);
        async move {
            recorder
                .lock()
                .unwrap()
                .push(ctx.payload().decode::<Value>()?);
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();

    let mut rolled_back = store.begin().await.unwrap();
    sqlx::query("INSERT INTO users (name) VALUES ('grace')")
        .execute(&mut *rolled_back)
        .await
        .unwrap();
    store
        .emit_in(
            &mut rolled_back,
            "outbox.user.created",
            json!({ "name": "grace" }),
        )
        .await
        .unwrap();
    rolled_back.rollback().await.unwrap();

    let mut committed = store.begin().await.unwrap();
    sqlx::query("INSERT INTO users (name) VALUES ('ada')")
        .execute(&mut *committed)
        .await
        .unwrap();
    let ids = store
        .emit_all_in(
            &mut committed,
            [
                ("outbox.user.created", json!({ "name": "ada" })),
                ("outbox.user.welcomed", json!({ "name": "ada" })),
            ],
        )
        .await
        .unwrap();
    store.commit(committed).await.unwrap();

    assert!(eventually(LIMIT, || async { seen.lock().unwrap().len() >= 2 }).await);
    within(LIMIT, "idle", bus.wait_for_idle()).await;
    assert_eq!(seen.lock().unwrap().len(), 2, "{:?}", seen.lock().unwrap());
    assert!(seen.lock().unwrap().iter().all(|p| p["name"] == "ada"));
    let events = store.events(None, 100).await.unwrap().items;
    let stored: Vec<&str> = events.iter().filter_map(|e| e.id()).collect();
    assert_eq!(stored, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(store.backlog().await.unwrap(), 0);
    within(LIMIT, "close", bus.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_token_cannot_ack_and_unacked_events_survive_a_reopen() {
    let dir = TempDir::new();
    let path = dir.db();
    let lease = Duration::from_millis(300);
    let first = sqlite_builder(&path, "first")
        .lease_timeout(lease)
        .build()
        .await
        .unwrap();
    let mut tx = first.begin().await.unwrap();
    first
        .emit_all_in(&mut tx, (0..3).map(|n| ("outbox.job", json!(n))))
        .await
        .unwrap();
    first.commit(tx).await.unwrap();
    let taken = within(LIMIT, "dequeue", first.dequeue(3, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(taken.len(), 3);
    first
        .ack(std::slice::from_ref(&taken[0].receipt))
        .await
        .unwrap();
    drop(first);

    // Another store on the same file (as after a restart) takes the lease
    // over once it expires: the unacknowledged events come back.
    let second = sqlite_builder(&path, "second")
        .lease_timeout(lease)
        .build()
        .await
        .unwrap();
    let mut again = Vec::new();
    within(LIMIT, "redelivery", async {
        while again.is_empty() {
            again = second
                .dequeue(10, Duration::from_millis(200))
                .await
                .unwrap();
        }
    })
    .await;
    assert!(again.iter().all(|d| d.delivery_count == 2), "{again:?}");
    assert!(again.len() >= 2, "{again:?}");
    let reopened = sqlite_builder(&path, "first")
        .lease_timeout(lease)
        .build()
        .await
        .unwrap();
    let stale = reopened.ack(std::slice::from_ref(&taken[1].receipt)).await;
    assert!(
        matches!(stale, Err(soiree::Error::LeasesLost { deliveries: 1 })),
        "a stale receipt was accepted: {stale:?}"
    );
    let receipts: Vec<String> = again.iter().map(|d| d.receipt.clone()).collect();
    second.ack(&receipts).await.unwrap();
    assert_eq!(second.backlog().await.unwrap(), 0);
}

#[tokio::test]
async fn an_in_memory_database_is_refused_with_a_typed_error() {
    let err = SqliteStore::open(":memory:").await.unwrap_err();
    assert!(matches!(err, soiree_sql::Error::InvalidConfig(_)), "{err}");
}
