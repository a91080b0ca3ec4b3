//! Failures stay visible: a queue store's delivery whose listener fails after
//! its retries, panics, or cannot be dispatched goes to the store's `fail`
//! (dead letters in `MemoryStore`), not to `ack`.

use std::sync::Arc;
use std::time::Duration;

use soiree::{EventBus, EventQueue, MemoryStore, StoredEvent};

const LIMIT: Duration = Duration::from_secs(20);

fn bus_over(store: &Arc<MemoryStore>) -> EventBus {
    EventBus::builder()
        .shared_store(store.clone())
        .poll_wait(Duration::from_millis(20))
        .build()
        .unwrap()
}

async fn settle(bus: &EventBus, store: &MemoryStore) {
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .expect("idle in time");
    assert_eq!(store.backlog().await.unwrap(), 0, "every delivery settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_panicking_listeners_are_dead_lettered_with_their_error() {
    let store = Arc::new(MemoryStore::queue());
    let bus = bus_over(&store);
    bus.on("job.fail", |_ctx| async { Err("disk full".into()) })
        .unwrap();
    bus.on("job.panic", |_ctx| async { panic!("boom") })
        .unwrap();
    bus.on("job.ok", |_ctx| async { Ok(()) }).unwrap();
    bus.start().unwrap();
    for topic in ["job.fail", "job.panic", "job.ok"] {
        let mut emission = bus.emit(topic, ());
        emission.persisted().await.unwrap();
    }
    settle(&bus, &store).await;
    let mut dead: Vec<(String, String)> = store
        .dead_letters()
        .into_iter()
        .map(|(event, error)| (event.topic, error))
        .collect();
    dead.sort();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].0, "job.fail");
    assert!(dead[0].1.contains("disk full"), "{dead:?}");
    assert_eq!(dead[1].0, "job.panic");
    assert!(dead[1].1.contains("boom"), "{dead:?}");
    bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_the_error_handler_swallows_is_acknowledged() {
    let store = Arc::new(MemoryStore::queue());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .poll_wait(Duration::from_millis(20))
        .error_handler(|_event, _err| None)
        .build()
        .unwrap();
    bus.on("job.fail", |_ctx| async { Err("expected".into()) })
        .unwrap();
    bus.start().unwrap();
    let mut emission = bus.emit("job.fail", ());
    emission.persisted().await.unwrap();
    settle(&bus, &store).await;
    assert!(store.dead_letters().is_empty());
    bus.close().await.unwrap();
}

/// An invalid topic never enters the queue: the store refuses it as the bus
/// does (soiree::limits). Entries written by other writers are dead-lettered
/// by the consumer: the Redis and SQL stores' tests write such rows raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_with_an_invalid_topic_is_refused_at_enqueue() {
    let store = Arc::new(MemoryStore::queue());
    let bus = bus_over(&store);
    bus.on("job.ok", |_ctx| async { Ok(()) }).unwrap();
    bus.start().unwrap();
    let err = store
        .enqueue(&StoredEvent {
            topic: "bad..topic".into(),
            payload: serde_json::Value::Null,
            properties: serde_json::Map::new(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, soiree::Error::InvalidTopicName { .. }),
        "{err}"
    );
    settle(&bus, &store).await;
    assert!(store.dead_letters().is_empty());
    bus.close().await.unwrap();
}
