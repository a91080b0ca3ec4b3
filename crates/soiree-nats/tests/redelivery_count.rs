//! Delivery counts of redeliveries: a consumer that long-polls right after
//! taking a delivery it never acknowledges gets it back counted 2, not 3
//! (nats-server 2.9 counts a redelivery that never arrives when it meets a
//! pull request at the instant the request expires; the store's long polls
//! never last a whole claim timeout, so they do not line up with it).

mod support;

use std::time::Duration;

use soiree::{EventQueue, StoredEvent};
use support::builder;

const CLAIM: Duration = Duration::from_secs(1);
const TRIALS: usize = 8;

fn event(id: &str) -> StoredEvent {
    let mut properties = serde_json::Map::new();
    properties.insert(soiree::PROPERTY_EVENT_ID.into(), id.into());
    StoredEvent {
        topic: "order.paid".into(),
        payload: serde_json::json!({ "id": id }),
        properties,
    }
}

async fn long_poll_after_each_delivery(url: &str, replicas: usize) {
    let store = builder(url)
        .prefix("again")
        .replicas(replicas)
        .claim_timeout(CLAIM)
        .build()
        .await
        .unwrap();
    for trial in 0..TRIALS {
        let id = format!("again-{trial}");
        store.enqueue(&event(&id)).await.unwrap();
        let first = tokio::time::timeout(CLAIM * 10, store.dequeue(1, CLAIM))
            .await
            .expect("dequeue in time")
            .unwrap();
        assert_eq!(first.len(), 1, "trial {trial}: the event was not delivered");
        assert_eq!(first[0].delivery_count, 1);
        // Left unacknowledged; asked again at once, for as long as the
        // claim timeout each time, as the conformance check does.
        let mut again = None;
        for _ in 0..10 {
            let batch = tokio::time::timeout(CLAIM * 10, store.dequeue(1, CLAIM))
                .await
                .expect("dequeue in time")
                .unwrap();
            if let Some(delivery) = batch.into_iter().next() {
                again = Some(delivery);
                break;
            }
        }
        let again = again.expect("the unacknowledged event came back within 10 polls");
        assert_eq!(again.event.id(), Some(id.as_str()));
        assert_eq!(
            again.delivery_count, 2,
            "trial {trial}: a redelivery was counted twice"
        );
        tokio::time::timeout(CLAIM * 10, store.ack(&[again.receipt]))
            .await
            .expect("ack in time")
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_met_by_a_long_poll_is_counted_once() {
    let _one = support::ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    long_poll_after_each_delivery(&server.url(), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_met_by_a_long_poll_is_counted_once_on_a_cluster() {
    let _one = support::ONE_AT_A_TIME.lock().await;
    let cluster = cluster_or_skip!();
    long_poll_after_each_delivery(&cluster.url(), 3).await;
}
