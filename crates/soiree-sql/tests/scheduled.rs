//! Delayed events and unique keys on SQLite, beyond the conformance
//! checks: a delayed event survives a restart, is listed and counted by
//! Inspect until cancelled, a waiting consumer takes a delayed event when
//! it falls due rather than at its next poll, a deferred delivery (a
//! snooze kept by the store) survives a restart, and an expired unique key
//! is replaced.

#![cfg(feature = "sqlite")]

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::json;
use soiree::{
    Appended, DeferredDelivery, Event, EventQueue, EventStore, Inspect, Query, StoredEvent,
};
use soiree_sql::SqliteStore;
use support::{TempDir, sqlite_builder};

const BOUND: Duration = Duration::from_secs(10);

async fn open(db: &Path) -> SqliteStore {
    tokio::time::timeout(BOUND, sqlite_builder(db, "soiree").build())
        .await
        .expect("the store opens in time")
        .expect("the store opens")
}

fn event(topic: &str, id: &str, due: Option<SystemTime>) -> StoredEvent {
    let mut event = Event::new(topic, json!({ "n": 1 }));
    if let Some(due) = due {
        event = event.deliver_at(due);
    }
    event.properties().set(soiree::PROPERTY_EVENT_ID, id);
    StoredEvent::from_event(&event).unwrap()
}

#[tokio::test]
async fn a_delayed_event_survives_a_restart_and_is_listed_until_cancelled() {
    let dir = TempDir::new();
    let db = dir.db();
    let due = SystemTime::now() + Duration::from_secs(3600);
    {
        let store = open(&db).await;
        store
            .enqueue(&event("invoice.remind", "later-1", Some(due)))
            .await
            .unwrap();
    }
    let store = open(&db).await;
    let page = tokio::time::timeout(BOUND, store.scheduled(&Query::default()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.items.len(), 1, "the delayed event was lost on restart");
    assert_eq!(page.items[0].event_id().as_deref(), Some("later-1"));
    let listed = page.items[0]
        .due_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let wanted = due.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    assert!(
        listed >= wanted && listed - wanted < Duration::from_millis(1),
        "listed due time {listed:?}, wanted {wanted:?} rounded up to the millisecond"
    );
    let stats = tokio::time::timeout(BOUND, Inspect::stats(&store))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.scheduled, 1);
    assert_eq!(stats.backlog, 0, "a delayed event counted as deliverable");
    let got = tokio::time::timeout(BOUND, store.dequeue(10, Duration::from_millis(200)))
        .await
        .unwrap()
        .unwrap();
    assert!(got.is_empty(), "a delayed event was delivered early");
    assert!(store.cancel_scheduled("later-1").await.unwrap());
    let page = store.scheduled(&Query::default()).await.unwrap();
    assert!(page.items.is_empty(), "a cancelled event is still listed");
    assert_eq!(Inspect::stats(&store).await.unwrap().scheduled, 0);
}

/// A consumer polling every `POLL` (far longer than the bound) and waiting
/// as long for a delivery.
const POLL: Duration = Duration::from_secs(60);

/// Dequeues on `store` until the delayed event `id` comes, within `BOUND`
/// (a fraction of `POLL`: a consumer that waits for its next poll fails).
async fn due_delivery(store: &SqliteStore, id: &str, due: SystemTime) {
    let got = tokio::time::timeout(BOUND, store.dequeue(10, POLL))
        .await
        .unwrap_or_else(|_| {
            panic!("{id} was not taken when due (the consumer waited for its poll)")
        })
        .unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].event.id(), Some(id));
    assert!(SystemTime::now() >= due, "{id} was delivered early");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_consumer_takes_a_delayed_event_when_it_falls_due() {
    let dir = TempDir::new();
    let db = dir.db();
    let open_polling = || async {
        tokio::time::timeout(
            BOUND,
            sqlite_builder(&db, "soiree").poll_interval(POLL).build(),
        )
        .await
        .expect("the store opens in time")
        .expect("the store opens")
    };
    let consumer = open_polling().await;
    // Scheduled by another handle (another process): the consumer learns
    // the due time from the table.
    let due = SystemTime::now() + Duration::from_millis(700);
    let other = open_polling().await;
    other
        .enqueue(&event("invoice.remind", "from-another", Some(due)))
        .await
        .unwrap();
    due_delivery(&consumer, "from-another", due).await;

    // Scheduled by the consumer's own handle while it waits.
    let waiting = consumer.clone();
    let due = SystemTime::now() + Duration::from_millis(900);
    let take = tokio::spawn(async move { due_delivery(&waiting, "from-here", due).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    consumer
        .enqueue(&event("invoice.remind", "from-here", Some(due)))
        .await
        .unwrap();
    tokio::time::timeout(BOUND, take).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_deferred_delivery_survives_a_restart_with_its_delivery_count() {
    let dir = TempDir::new();
    let db = dir.db();
    let until = SystemTime::now() + Duration::from_millis(1500);
    let first = {
        let store = open(&db).await;
        store
            .enqueue(&event("report.build", "snoozed-1", None))
            .await
            .unwrap();
        let first = tokio::time::timeout(BOUND, store.dequeue(1, BOUND))
            .await
            .unwrap()
            .unwrap()
            .remove(0);
        let deferral = DeferredDelivery {
            receipt: first.receipt.clone(),
            until,
            reason: "soiree.snoozed: re-run after 1.5s".into(),
        };
        tokio::time::timeout(BOUND, store.defer(&[deferral]))
            .await
            .unwrap()
            .unwrap();
        first
    };
    let store = open(&db).await;
    let deadline = tokio::time::Instant::now() + BOUND;
    let again = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deferred delivery was lost on restart"
        );
        let mut got = tokio::time::timeout(BOUND, store.dequeue(1, Duration::from_millis(200)))
            .await
            .unwrap()
            .unwrap();
        if let Some(delivery) = got.pop() {
            break delivery;
        }
    };
    assert!(
        SystemTime::now() >= until,
        "the deferred delivery came back before its due time"
    );
    assert_eq!(again.event.id(), Some("snoozed-1"));
    assert_eq!(
        again.delivery_count, first.delivery_count,
        "deferring counted a delivery"
    );
}

#[tokio::test]
async fn an_expired_unique_key_is_replaced() {
    let dir = TempDir::new();
    let store = open(&dir.db()).await;
    // Held within its window: an hour, so that no slow host ends it early.
    let first = event("order.sync", "first", None);
    assert_eq!(
        store
            .append_unique(&first, "sync:1", Duration::from_secs(3600))
            .await
            .unwrap(),
        Appended::New
    );
    assert_eq!(
        store
            .append_unique(
                &event("order.sync", "second", None),
                "sync:1",
                Duration::from_secs(3600)
            )
            .await
            .unwrap(),
        Appended::Existing("first".into()),
    );
    // Replaced once its window has passed.
    let window = Duration::from_millis(20);
    assert_eq!(
        store
            .append_unique(&event("order.sync", "short", None), "sync:2", window)
            .await
            .unwrap(),
        Appended::New
    );
    tokio::time::sleep(window * 3).await;
    assert_eq!(
        store
            .append_unique(&event("order.sync", "third", None), "sync:2", window)
            .await
            .unwrap(),
        Appended::New,
        "a key past its window still held"
    );
    let hostile = "k\0ey";
    assert!(
        store
            .append_unique(&event("order.sync", "fourth", None), hostile, window)
            .await
            .is_err(),
        "a key with NUL was accepted"
    );
}
