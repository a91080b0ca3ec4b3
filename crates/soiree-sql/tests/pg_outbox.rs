//! Transactional emit on PostgreSQL: committed events are delivered, rolled
//! back ones never are, and a transaction that commits late is not skipped.

#![cfg(feature = "postgres")]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use soiree::{EventBus, EventHistory, EventQueue};
use soiree_sql::{Error, PostgresStore};
use support::{eventually, pg_builder, within};

const LIMIT: Duration = Duration::from_secs(30);

/// A bus on `store` with a named listener recording the payloads it handles.
fn recording_bus(store: &PostgresStore) -> (EventBus, Arc<Mutex<Vec<Value>>>) {
    let bus = EventBus::builder()
        .store(store.clone())
        .poll_wait(Duration::from_millis(200))
        .build()
        .unwrap();
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
    (bus, seen)
}

async fn user_table(store: &PostgresStore) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE \"{}\".users (name text PRIMARY KEY)",
        store.schema()
    )))
    .execute(store.pool())
    .await
    .unwrap();
}

async fn insert_user(store: &PostgresStore, conn: &mut sqlx::PgConnection, name: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{}\".users (name) VALUES ($1)",
        store.schema()
    )))
    .bind(name)
    .execute(conn)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_events_are_delivered_and_rolled_back_ones_never() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "outbox").build().await.unwrap();
    user_table(&store).await;
    let (bus, seen) = recording_bus(&store);

    let mut rolled_back = store.begin().await.unwrap();
    insert_user(&store, &mut rolled_back, "grace").await;
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
    insert_user(&store, &mut committed, "ada").await;
    let id = store
        .emit_in(
            &mut committed,
            "outbox.user.created",
            json!({ "name": "ada" }),
        )
        .await
        .unwrap();
    assert!(!id.is_empty());
    store.commit(committed).await.unwrap();

    let handled = eventually(LIMIT, || async { !seen.lock().unwrap().is_empty() }).await;
    assert!(handled, "the committed event was not handled");
    within(LIMIT, "idle", bus.wait_for_idle()).await;
    assert_eq!(*seen.lock().unwrap(), vec![json!({ "name": "ada" })]);
    assert_eq!(store.backlog().await.unwrap(), 0);
    let events = store.events(None, 100).await.unwrap().items;
    assert_eq!(
        events.len(),
        1,
        "the rolled-back event is in the log: {events:?}"
    );
    assert_eq!(events[0].id(), Some(id.as_str()));
    within(LIMIT, "close", bus.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_delivered_in_order_and_bad_input_writes_nothing() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "outbox").build().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let ids = store
        .emit_all_in(&mut tx, (0..20).map(|n| ("outbox.item", json!({ "n": n }))))
        .await
        .unwrap();
    assert_eq!(ids.len(), 20);
    for bad in ["", "outbox.*", "a..b"] {
        let err = store.emit_in(&mut tx, bad, json!(1)).await.unwrap_err();
        assert!(matches!(err, Error::InvalidTopic { .. }), "{bad:?}: {err}");
    }
    let err = store
        .emit_all_in(&mut tx, [("outbox.ok", json!(1)), ("outbox.**", json!(2))])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTopic { .. }), "{err}");
    let err = store
        .emit_in(
            &mut tx,
            "outbox.ok",
            soiree::Payload::opaque(std::time::Instant::now()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Event(soiree::Error::Serialization(_))),
        "{err}"
    );
    store.commit(tx).await.unwrap();

    let mut got = Vec::new();
    while got.len() < 20 {
        let batch = within(LIMIT, "dequeue", store.dequeue(20, Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(!batch.is_empty(), "committed events were not delivered");
        got.extend(batch);
    }
    let ns: Vec<u64> = got
        .iter()
        .map(|d| d.event.payload["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, (0..20).collect::<Vec<_>>());
    let got_ids: Vec<&str> = got.iter().map(|d| d.event.id().unwrap()).collect();
    assert_eq!(got_ids, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let receipts: Vec<String> = got.iter().map(|d| d.receipt.clone()).collect();
    store.ack(&receipts).await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), 0);
}

/// Sequence order is not commit order: the transaction that inserted first
/// commits last. Its event must not be skipped by a cursor that already
/// moved past the other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_transactions_committing_in_reverse_order_are_both_delivered() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "outbox").build().await.unwrap();
    let mut early = store.begin().await.unwrap();
    store
        .emit_in(&mut early, "outbox.early", json!("early"))
        .await
        .unwrap();
    let mut late = store.begin().await.unwrap();
    store
        .emit_in(&mut late, "outbox.late", json!("late"))
        .await
        .unwrap();
    store.commit(late).await.unwrap();

    // While the early transaction is open, the late one's event waits.
    let none = within(
        LIMIT,
        "dequeue",
        store.dequeue(10, Duration::from_millis(300)),
    )
    .await
    .unwrap();
    assert!(
        none.is_empty(),
        "delivered past an open transaction: {none:?}"
    );
    assert_eq!(store.backlog().await.unwrap(), 1);

    store.commit(early).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let batch = within(LIMIT, "dequeue", store.dequeue(10, Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(!batch.is_empty(), "a committed event was skipped");
        got.extend(batch);
    }
    let payloads: Vec<&Value> = got.iter().map(|d| &d.event.payload).collect();
    assert_eq!(payloads, [&json!("early"), &json!("late")]);
    let receipts: Vec<String> = got.iter().map(|d| d.receipt.clone()).collect();
    store.ack(&receipts).await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), 0);
}

/// The same through a bus, with the early transaction committed while the
/// bus's consumer is already waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_handles_both_overlapping_transactions() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "outbox").build().await.unwrap();
    let (bus, seen) = recording_bus(&store);
    let mut early = store.begin().await.unwrap();
    store
        .emit_in(&mut early, "outbox.a", json!("early"))
        .await
        .unwrap();
    let mut late = store.begin().await.unwrap();
    store
        .emit_in(&mut late, "outbox.b", json!("late"))
        .await
        .unwrap();
    store.commit(late).await.unwrap();
    store.commit(early).await.unwrap();
    let both = eventually(LIMIT, || async { seen.lock().unwrap().len() >= 2 }).await;
    assert!(both, "handled only {:?}", seen.lock().unwrap());
    within(LIMIT, "idle", bus.wait_for_idle()).await;
    let mut handled = seen.lock().unwrap().clone();
    handled.sort_by_key(ToString::to_string);
    assert_eq!(handled, vec![json!("early"), json!("late")]);
    assert_eq!(store.backlog().await.unwrap(), 0);
    within(LIMIT, "close", bus.close()).await.unwrap();
}
