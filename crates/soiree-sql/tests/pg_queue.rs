//! The PostgreSQL store's queue: claims, acknowledgement by lease, fencing,
//! redelivery, dead letters.

#![cfg(feature = "postgres")]

mod support;

use std::time::Duration;

use serde_json::json;
use soiree::{EventQueue, PROPERTY_EVENT_ID, StoredEvent};
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
        .build()
        .await
        .unwrap();
    let second = pg_builder_in(&server, &schema, "second")
        .lease_timeout(lease)
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
        matches!(stale, Err(soiree::Error::Store(_))),
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
