//! A delayed event emitted in the caller's transaction (`emit_in`,
//! `emit_all_in`) waits in `soiree_scheduled` once committed, is gone with
//! a rollback, is never delivered before its due time, and is delivered
//! after it — on SQLite and on PostgreSQL, with one scenario written over
//! `DB: Driver`.

#![cfg(all(feature = "postgres", feature = "sqlite"))]

mod support;

use std::time::{Duration, SystemTime};

use soiree::{Event, EventQueue, Inspect, Query};
use soiree_sql::{Driver, SqlStore};
use support::{TempDir, pg_builder, sqlite_builder, within};

const LIMIT: Duration = Duration::from_secs(30);

fn delayed(topic: &str, due: SystemTime) -> Event {
    Event::new(topic, serde_json::json!({ "due": "later" })).deliver_at(due)
}

/// The event ids listed as scheduled.
async fn scheduled_ids<DB: Driver>(store: &SqlStore<DB>) -> Vec<String> {
    let page = within(LIMIT, "scheduled", store.scheduled(&Query::default()))
        .await
        .unwrap();
    page.items
        .iter()
        .map(|item| item.event_id().unwrap_or_default())
        .collect()
}

/// The scenario, once for any database.
async fn delayed_events_wait_in_the_transaction<DB: Driver>(store: SqlStore<DB>) {
    let later = SystemTime::now() + Duration::from_secs(3600);

    // Rolled back: nothing waits, nothing is delivered.
    let mut tx = within(LIMIT, "begin", store.begin()).await.unwrap();
    within(
        LIMIT,
        "emit",
        store.emit_in(&mut tx, "invoice.remind", delayed("invoice.remind", later)),
    )
    .await
    .unwrap();
    within(LIMIT, "rollback", tx.rollback()).await.unwrap();
    assert!(
        scheduled_ids(&store).await.is_empty(),
        "a rolled-back delayed event waits"
    );

    // Committed: the delayed one waits, the other one is in the log.
    let mut tx = within(LIMIT, "begin", store.begin()).await.unwrap();
    let waiting = within(
        LIMIT,
        "emit",
        store.emit_in(&mut tx, "invoice.remind", delayed("invoice.remind", later)),
    )
    .await
    .unwrap();
    let now = within(
        LIMIT,
        "emit",
        store.emit_in(&mut tx, "invoice.sent", serde_json::json!({ "n": 1 })),
    )
    .await
    .unwrap();
    within(LIMIT, "commit", store.commit(tx)).await.unwrap();
    assert_eq!(scheduled_ids(&store).await, std::slice::from_ref(&waiting));
    let got = within(
        LIMIT,
        "dequeue",
        store.dequeue(10, Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let got_ids: Vec<String> = got
        .iter()
        .map(|d| d.event.id().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(got_ids, [now], "only the event due now is delivered");
    within(LIMIT, "ack", store.ack(&[got[0].receipt.clone()]))
        .await
        .unwrap();
    assert!(
        within(LIMIT, "cancel", store.cancel_scheduled(&waiting))
            .await
            .unwrap()
    );

    // Due soon, emitted in a batch: never delivered before its due time,
    // delivered after it.
    let due = SystemTime::now() + Duration::from_millis(500);
    let mut tx = within(LIMIT, "begin", store.begin()).await.unwrap();
    let ids = within(
        LIMIT,
        "emit_all_in",
        store.emit_all_in(
            &mut tx,
            [("invoice.remind", delayed("invoice.remind", due))],
        ),
    )
    .await
    .unwrap();
    within(LIMIT, "commit", store.commit(tx)).await.unwrap();
    // Bounded: at most LIMIT, one dequeue (≤ 100 ms wait) at a time.
    let deadline = tokio::time::Instant::now() + LIMIT;
    let delivered = loop {
        let got = within(
            LIMIT,
            "dequeue",
            store.dequeue(10, Duration::from_millis(100)),
        )
        .await
        .unwrap();
        let returned = SystemTime::now();
        if returned < due {
            assert!(got.is_empty(), "delivered before its due time");
        }
        if !got.is_empty() || tokio::time::Instant::now() >= deadline {
            break got;
        }
    };
    let delivered: Vec<String> = delivered
        .iter()
        .map(|d| d.event.id().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        delivered, ids,
        "the delayed event is delivered after its due time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite() {
    let dir = TempDir::new();
    let store = sqlite_builder(&dir.db(), "c1")
        .poll_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    delayed_events_wait_in_the_transaction(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "c1").build().await.unwrap();
    delayed_events_wait_in_the_transaction(store).await;
}
