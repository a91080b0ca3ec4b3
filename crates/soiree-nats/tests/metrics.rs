//! The store's series: soiree's shared store metrics
//! (`soiree_store_*{backend="nats",store=<events stream>,group=<group>}`),
//! as the Redis and SQL stores report them.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::{EventBus, EventQueue, FailedDelivery, MetricsRegistry, StoredEvent};
use support::{builder, eventually};

const WAIT: Duration = Duration::from_secs(30);
const EVENTS: usize = 20;

fn event(topic: &str, id: &str) -> StoredEvent {
    let mut properties = serde_json::Map::new();
    properties.insert(soiree::PROPERTY_EVENT_ID.into(), id.into());
    StoredEvent {
        topic: topic.into(),
        payload: serde_json::json!({ "id": id }),
        properties,
    }
}

fn assert_series(registry: &MetricsRegistry, lines: &[(&str, u64)]) {
    let metrics = registry.encode();
    for (name, value) in lines {
        let line = format!(
            r#"{name}{{backend="nats",store="SOIREE_metered_EVENTS",group="soiree"}} {value}"#
        );
        assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    }
}

/// Events emitted and handled through a bus count as persisted, dequeued
/// and results; a delivery handed back and taken again counts as a
/// redelivery, a failed one as dead-lettered; the queue length is what the
/// group has not acknowledged, as of the last backlog or stats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_reports_the_shared_store_series() {
    let server = server_or_skip!();
    let registry = MetricsRegistry::new();
    let store = builder(&server.url())
        .prefix("metered")
        .metrics_registry(registry.clone())
        .build()
        .await
        .unwrap();
    let bus = EventBus::builder()
        .store(store.clone())
        .metrics_registry(MetricsRegistry::new())
        .build()
        .unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = handled.clone();
    bus.on_named("count", "order.paid", move |_| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();
    for i in 0..EVENTS {
        tokio::time::timeout(WAIT, bus.emit("order.paid", i).persisted())
            .await
            .expect("persisted in time")
            .unwrap();
    }
    assert!(eventually(WAIT, || async { handled.load(Ordering::SeqCst) == EVENTS }).await);
    tokio::time::timeout(WAIT, bus.close())
        .await
        .expect("close in time")
        .unwrap();
    assert_eq!(store.backlog().await.unwrap(), 0);
    let n = EVENTS as u64;
    assert_series(
        &registry,
        &[
            ("soiree_store_events_persisted_total", n),
            ("soiree_store_events_dequeued_total", n),
            ("soiree_store_results_persisted_total", n),
            ("soiree_store_queue_length", 0),
            ("soiree_store_redeliveries_total", 0),
            ("soiree_store_dead_lettered_total", 0),
        ],
    );

    // One more event: taken, handed back, taken again, failed.
    store
        .enqueue(&event("order.refunded", "m-1"))
        .await
        .unwrap();
    assert_eq!(store.backlog().await.unwrap(), 1);
    let first = store.dequeue(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.len(), 1);
    store.release(&[first[0].receipt.clone()]).await.unwrap();
    let second = store.dequeue(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].delivery_count, 2);
    store
        .fail(&[FailedDelivery {
            receipt: second[0].receipt.clone(),
            error: "refused".into(),
        }])
        .await
        .unwrap();
    assert_eq!(store.backlog().await.unwrap(), 0);
    assert_series(
        &registry,
        &[
            ("soiree_store_events_persisted_total", n + 1),
            ("soiree_store_events_dequeued_total", n + 2),
            ("soiree_store_redeliveries_total", 1),
            ("soiree_store_dead_lettered_total", 1),
            ("soiree_store_queue_length", 0),
        ],
    );
}

/// Results before ack: a listener result larger than the server takes
/// (its `max_payload`) is refused for good, so it is counted
/// (`soiree_store_results_refused_total`) and dropped, and its delivery is
/// acknowledged with the two beside it (a refusal cannot wedge it; a
/// result lost for a transient reason would hold it back instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_too_large_for_the_server_is_counted_and_does_not_hold_back_acks() {
    let server = server_or_skip!();
    let registry = MetricsRegistry::new();
    let store = builder(&server.url())
        .prefix("metered")
        .metrics_registry(registry.clone())
        .build()
        .await
        .unwrap();
    for id in ["ok-1", "big", "ok-2"] {
        store.enqueue(&event("order.paid", id)).await.unwrap();
    }
    let mut deliveries = Vec::new();
    for _ in 0..20 {
        if deliveries.len() >= 3 {
            break;
        }
        let batch = tokio::time::timeout(WAIT, store.dequeue(10, Duration::from_millis(500)))
            .await
            .expect("dequeued in time")
            .unwrap();
        deliveries.extend(batch);
    }
    assert_eq!(deliveries.len(), 3);
    let max_payload = soiree_test::nats::MAX_PAYLOAD;
    for delivery in &deliveries {
        let id = delivery.event.id().unwrap();
        // Failed, with an error text past the test server's max_payload.
        let error = (id == "big").then(|| "x".repeat(2 * max_payload));
        let result = soiree::StoredResult::new("order.paid", id, "charge", 1, error);
        tokio::time::timeout(
            WAIT,
            soiree::EventStore::save_handler_result(&store, &result),
        )
        .await
        .expect("saved in time")
        .unwrap();
    }
    let receipts: Vec<String> = deliveries.iter().map(|d| d.receipt.clone()).collect();
    tokio::time::timeout(WAIT, store.ack(&receipts))
        .await
        .expect("acknowledged in time")
        .unwrap();
    assert_eq!(store.backlog().await.unwrap(), 0, "all three acknowledged");
    assert_series(
        &registry,
        &[
            ("soiree_store_results_refused_total", 1),
            ("soiree_store_acks_withheld_total", 0),
        ],
    );
}
