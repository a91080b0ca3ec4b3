//! The PostgreSQL store's queue: claims, acknowledgement by lease, fencing,
//! redelivery, dead letters.

#![cfg(feature = "postgres")]

mod support;

use std::time::Duration;

use serde_json::json;
use soiree::{EventQueue, EventStore, HandlerDedup, PROPERTY_EVENT_ID, StoredEvent, StoredResult};
use soiree_sql::Error;
use support::{fresh_schema, pg_builder, pg_builder_in, within};

const LIMIT: Duration = Duration::from_secs(20);

fn event(n: u64) -> StoredEvent {
    let mut properties = serde_json::Map::new();
    properties.insert(PROPERTY_EVENT_ID.to_owned(), json!(format!("evt-{n}")));
    StoredEvent {
        topic: "test.queued".to_owned(),
        payload: json!({ "n": n }),
        properties,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_round_trip_in_order_and_ack_empties_the_backlog() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "c1").build().await.unwrap();
    for n in 0..10 {
        within(LIMIT, "enqueue", store.enqueue(&event(n)))
            .await
            .unwrap();
    }
    assert_eq!(store.backlog().await.unwrap(), 10);
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let batch = within(LIMIT, "dequeue", store.dequeue(3, Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(!batch.is_empty() && batch.len() <= 3);
        seen.extend(batch);
    }
    let ns: Vec<u64> = seen
        .iter()
        .map(|d| d.event.payload["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, (0..10).collect::<Vec<_>>());
    assert!(seen.iter().all(|d| d.delivery_count == 1));
    let receipts: Vec<String> = seen.iter().map(|d| d.receipt.clone()).collect();
    store.ack(&receipts[..4]).await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), 6);
    store.ack(&receipts[4..]).await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), 0);
    let again = store.dequeue(10, Duration::from_millis(100)).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_token_cannot_ack_and_the_event_is_redelivered() {
    let server = pg_or_skip!();
    let schema = fresh_schema();
    let lease = Duration::from_millis(300);
    let first = pg_builder_in(&server, &schema, "first")
        .lease_timeout(lease)
        // A delivery out longer than this counts as stuck: its lease expires.
        .max_handler_time(lease)
        .build()
        .await
        .unwrap();
    let second = pg_builder_in(&server, &schema, "second")
        .lease_timeout(lease)
        // A delivery out longer than this counts as stuck: its lease expires.
        .max_handler_time(lease)
        .build()
        .await
        .unwrap();
    first.enqueue(&event(1)).await.unwrap();
    let taken = within(LIMIT, "dequeue", first.dequeue(1, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    // The first consumer stalls past its lease; the second takes it over.
    let again = within(LIMIT, "redelivery", async {
        loop {
            let batch = second.dequeue(1, Duration::from_millis(200)).await.unwrap();
            if let Some(delivery) = batch.into_iter().next() {
                break delivery;
            }
        }
    })
    .await;
    assert_eq!(again.event, taken[0].event);
    assert_eq!(again.delivery_count, 2);
    let stale = first.ack(std::slice::from_ref(&taken[0].receipt)).await;
    assert!(
        matches!(stale, Err(soiree::Error::LeasesLost { deliveries: 1 })),
        "a stale ack was accepted: {stale:?}"
    );
    assert_eq!(
        second.backlog().await.unwrap(),
        1,
        "a stale ack removed the event"
    );
    second
        .ack(std::slice::from_ref(&again.receipt))
        .await
        .unwrap();
    assert_eq!(second.backlog().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_receipts_are_a_typed_error() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "c1").build().await.unwrap();
    let err = store.ack(&["not-a-receipt".to_owned()]).await.unwrap_err();
    assert!(err.to_string().contains("invalid receipt"), "{err}");
    let _ = Error::InvalidReceipt(String::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_are_not_events_go_to_the_dead_letters() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "c1").build().await.unwrap();
    let schema = store.schema().to_owned();
    for (topic, properties) in [("bad.props", "[1, 2]"), ("", "{}"), ("bad.json", "\"x\"")] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO \"{schema}\".soiree_events (topic, payload, properties) \
             VALUES ($1, 'null', $2::json)"
        )))
        .bind(topic)
        .bind(properties)
        .execute(store.pool())
        .await
        .unwrap();
    }
    store.enqueue(&event(7)).await.unwrap();
    let got = within(LIMIT, "dequeue", store.dequeue(10, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].event, event(7));
    store.ack(&[got[0].receipt.clone()]).await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), 0);
    let dead: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT topic, error FROM \"{schema}\".soiree_dead_letters ORDER BY event_row"
    )))
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert!(
        dead.iter()
            .all(|(_, error)| error.starts_with("parse error")),
        "{dead:?}"
    );
}

/// A claim that finds nothing to claim writes nothing: it leaves the
/// group's cursor unlocked (a lock would cost a transaction id and a WAL
/// flush per idle look, and hold back the claims of events committed
/// meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_finds_nothing_leaves_the_cursor_unlocked() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "c1").build().await.unwrap();
    let schema = store.schema().to_owned();
    store.enqueue(&event(1)).await.unwrap();
    let got = within(LIMIT, "dequeue", store.dequeue(1, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    // The row's xmax names the last transaction that locked or updated
    // it: a lock by a later claim changes it.
    let locker = || {
        sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
            "SELECT xmax::text FROM \"{schema}\".soiree_cursors"
        )))
        .fetch_one(store.pool())
    };
    let before = locker().await.unwrap();
    for _ in 0..3 {
        let none = store.dequeue(1, Duration::from_millis(20)).await.unwrap();
        assert!(none.is_empty(), "{none:?}");
    }
    assert_eq!(locker().await.unwrap(), before);
}

/// A claim reads its events' listener successes with them, by the log's
/// event id column; a row written by other means, whose column does not
/// hold its event's id, still finds its successes (looked up by the id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimed_events_know_their_listeners_successes() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "c1").build().await.unwrap();
    let schema = store.schema().to_owned();
    for id in ["evt-1", "evt-raw"] {
        let done = StoredResult::new("test.queued", id, "done", 1, None);
        store.save_handler_result(&done).await.unwrap();
    }
    store.enqueue(&event(1)).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{schema}\".soiree_events (topic, payload, properties) \
         VALUES ('test.queued', '{{\"n\": 2}}', '{{\"soiree.event_id\": \"evt-raw\"}}')"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    let got = within(LIMIT, "dequeue", store.dequeue(10, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    for id in ["evt-1", "evt-raw"] {
        assert!(store.handler_succeeded(id, "done").await.unwrap(), "{id}");
        assert!(!store.handler_succeeded(id, "other").await.unwrap(), "{id}");
    }
}

/// A lease redelivered twice is split into one lease per event, so that one
/// event that is never acknowledged (a poison event) is dead-lettered alone
/// past `max_deliveries` while its neighbours are handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_isolated_then_dead_lettered_alone() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "c1")
        .lease_timeout(Duration::from_millis(200))
        .max_handler_time(Duration::from_millis(200))
        .max_deliveries(3)
        .build()
        .await
        .unwrap();
    for n in 0..3 {
        store.enqueue(&event(n)).await.unwrap();
    }
    let mut counts = std::collections::BTreeMap::new();
    within(
        Duration::from_secs(60),
        "the poison event to be dead-lettered",
        async {
            loop {
                let batch = store.dequeue(10, Duration::from_millis(200)).await.unwrap();
                for delivery in batch {
                    let n = delivery.event.payload["n"].as_u64().unwrap();
                    counts.insert(n, delivery.delivery_count);
                    // Events 0 and 2 are handled once they come on their own
                    // (third delivery); event 1 never is.
                    if n != 1 && delivery.delivery_count >= 3 {
                        store.ack(&[delivery.receipt]).await.unwrap();
                    }
                }
                if store.backlog().await.unwrap() == 0 {
                    break;
                }
            }
        },
    )
    .await;
    assert_eq!(counts.get(&0), Some(&3), "{counts:?}");
    assert_eq!(counts.get(&2), Some(&3), "{counts:?}");
    assert_eq!(counts.get(&1), Some(&3), "{counts:?}");
    let dead: Vec<(i32, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT deliveries, error FROM \"{}\".soiree_dead_letters",
        store.schema()
    )))
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, 4);
    assert!(dead[0].1.contains("delivered 4 times (max 3)"), "{dead:?}");
}
