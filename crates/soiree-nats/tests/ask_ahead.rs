//! The store asks for the next batch while the bus runs one (see the
//! `puller` module): what it took ahead and did not hand out goes back to
//! the group at release, not after the claim timeout.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use soiree::{EventQueue, StoredEvent};
use support::builder;

/// Longer than the test waits: a delivery left to it never comes back.
const CLAIM: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(30);

fn event(i: usize) -> StoredEvent {
    let mut properties = serde_json::Map::new();
    properties.insert(
        soiree::PROPERTY_EVENT_ID.into(),
        format!("ahead-{i}").into(),
    );
    StoredEvent {
        topic: "order.paid".into(),
        payload: serde_json::json!(i),
        properties,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_asked_for_ahead_are_handed_back_at_release() {
    let Some(server) = support::NatsServer::start_or_skip() else {
        return;
    };
    let store = builder(&server.url())
        .prefix("ahead")
        .claim_timeout(CLAIM)
        .build()
        .await
        .unwrap();
    for i in 0..10 {
        store.enqueue(&event(i)).await.unwrap();
    }
    // A full batch: the next five are asked for ahead.
    let first = store.dequeue(5, WAIT).await.unwrap();
    assert_eq!(first.len(), 5);
    let receipts: Vec<String> = first.iter().map(|d| d.receipt.clone()).collect();
    store.release(&receipts).await.unwrap();

    // Another handle of the group gets all ten at once.
    let other = builder(&server.url())
        .prefix("ahead")
        .claim_timeout(CLAIM)
        .build()
        .await
        .unwrap();
    let mut seen = HashSet::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < 10 && Instant::now() < deadline {
        for delivery in other.dequeue(10, Duration::from_secs(1)).await.unwrap() {
            seen.insert(delivery.event.id().map(str::to_owned));
        }
    }
    assert_eq!(
        seen.len(),
        10,
        "the deliveries taken ahead were not handed back: {seen:?}"
    );
}
