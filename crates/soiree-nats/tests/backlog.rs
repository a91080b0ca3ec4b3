//! The backlog on a cluster: an event whose publish was acknowledged is
//! counted at once, though the consumer's replica may not have applied it
//! yet (a bus's `wait_for_idle` relies on it).

mod support;

use soiree::{EventQueue, StoredEvent};
use support::builder;

const ROUNDS: usize = 4;
const EVENTS: u64 = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_event_is_in_the_backlog_at_once_on_a_cluster() {
    let _one = support::ONE_AT_A_TIME.lock().await;
    let cluster = cluster_or_skip!();
    for round in 0..ROUNDS {
        let store = builder(&cluster.url())
            .prefix(format!("lag{round}"))
            .replicas(3)
            .build()
            .await
            .unwrap();
        for i in 0..EVENTS {
            let mut properties = serde_json::Map::new();
            properties.insert(soiree::PROPERTY_EVENT_ID.into(), format!("lag-{i}").into());
            let event = StoredEvent {
                topic: "order.paid".into(),
                payload: serde_json::json!(i),
                properties,
            };
            store.enqueue(&event).await.unwrap();
            let backlog = store.backlog().await.unwrap();
            assert_eq!(
                backlog,
                i + 1,
                "round {round}: event {i} is not in the backlog yet"
            );
        }
    }
}
