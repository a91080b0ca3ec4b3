//! Failures stay visible: a listener that still fails after its retries, a
//! panicking listener and an entry with an invalid topic are moved to the
//! dead-letter stream with their error (through `EventQueue::fail`), and can
//! be replayed from there.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use soiree::{Backoff, Event, EventBus, EventQueue, PROPERTY_EVENT_ID, RetryPolicy, StoredEvent};
use soiree_redis::{DeadLetter, FailurePolicy, RedisStore};
use support::{builder, eventually};

const LIMIT: Duration = Duration::from_secs(20);

fn bus_over(store: &RedisStore) -> EventBus {
    EventBus::builder()
        .store(store.clone())
        .poll_wait(Duration::from_millis(100))
        .retry(
            RetryPolicy::attempts(3)
                .unwrap()
                .with_backoff(Backoff::constant(Duration::from_millis(5))),
        )
        .build()
        .unwrap()
}

async fn emit(bus: &EventBus, topic: &str, id: &str) {
    let event = Event::new(topic, serde_json::json!({ "id": id }));
    event.properties().set(PROPERTY_EVENT_ID, id);
    let mut emission = bus.emit(topic, event);
    tokio::time::timeout(LIMIT, emission.persisted())
        .await
        .expect("persisted in time")
        .expect("stored");
}

async fn settle(bus: &EventBus, store: &RedisStore) {
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .expect("idle in time");
    let backlog = tokio::time::timeout(LIMIT, store.backlog())
        .await
        .expect("backlog in time")
        .unwrap();
    assert_eq!(backlog, 0, "every delivery settled");
}

async fn letters(store: &RedisStore) -> Vec<DeadLetter> {
    tokio::time::timeout(LIMIT, store.dead_letters(None, 100))
        .await
        .expect("dead letters in time")
        .unwrap()
        .items
}

async fn close(bus: EventBus) {
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .expect("close in time")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_failing_after_its_retries_is_dead_lettered_and_replayable() {
    let server = server_or_skip!();
    let store = builder(&server, "c1").build().await.unwrap();
    let bus = bus_over(&store);
    let runs = Arc::new(AtomicUsize::new(0));
    let broken = Arc::new(AtomicBool::new(true));
    let (r, b) = (Arc::clone(&runs), Arc::clone(&broken));
    bus.on_named("charge", "order.paid", move |_ctx| {
        r.fetch_add(1, Ordering::SeqCst);
        let broken = b.load(Ordering::SeqCst);
        async move {
            if broken {
                Err("card declined".into())
            } else {
                Ok(())
            }
        }
    })
    .unwrap();
    bus.start().unwrap();
    emit(&bus, "order.paid", "evt-1").await;
    settle(&bus, &store).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3, "one run and two retries");
    let dead = letters(&store).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].error.contains("card declined"), "{dead:?}");
    assert_eq!(dead[0].deliveries, 1);
    let event = dead[0].event.as_ref().expect("the event is kept");
    assert_eq!(event.id(), Some("evt-1"));
    assert_eq!(event.topic, "order.paid");
    assert!(store.pending(None, 10).await.unwrap().items.is_empty());

    // Fixed: replaying the dead letter runs the listener again, once.
    broken.store(false, Ordering::SeqCst);
    let replayed = tokio::time::timeout(LIMIT, store.replay_dead_letters(|_| true))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replayed, 1);
    assert!(
        eventually(LIMIT, || async { runs.load(Ordering::SeqCst) == 4 }).await,
        "the replayed event ran"
    );
    settle(&bus, &store).await;
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    assert!(letters(&store).await.is_empty(), "succeeded: no new letter");
    close(bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_listener_is_dead_lettered() {
    let server = server_or_skip!();
    let store = builder(&server, "c1").build().await.unwrap();
    let bus = bus_over(&store);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    bus.on_named("explode", "job.run", move |_ctx| {
        r.fetch_add(1, Ordering::SeqCst);
        async { panic!("boom") }
    })
    .unwrap();
    bus.on_named("ok", "job.ok", |_ctx| async { Ok(()) })
        .unwrap();
    bus.start().unwrap();
    emit(&bus, "job.run", "evt-panic").await;
    emit(&bus, "job.ok", "evt-ok").await;
    settle(&bus, &store).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "panics are not retried");
    let dead = letters(&store).await;
    assert_eq!(dead.len(), 1, "only the panicking one: {dead:?}");
    assert!(dead[0].error.contains("boom"), "{dead:?}");
    assert_eq!(
        dead[0].event.as_ref().and_then(StoredEvent::id),
        Some("evt-panic")
    );
    close(bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_with_an_invalid_topic_is_dead_lettered() {
    let server = server_or_skip!();
    let store = builder(&server, "c1").build().await.unwrap();
    // The store refuses it, as the bus does (soiree::limits)…
    let refused = tokio::time::timeout(
        LIMIT,
        store.enqueue(&StoredEvent {
            topic: "bad..topic".into(),
            payload: serde_json::json!(1),
            properties: serde_json::Map::new(),
        }),
    )
    .await
    .unwrap();
    assert!(
        matches!(refused, Err(soiree::Error::InvalidTopicName { .. })),
        "{refused:?}"
    );
    // …but another writer (the Go package, a script) may write it.
    let _: String = redis::cmd("XADD")
        .arg(store.events_key())
        .arg("*")
        .arg("event")
        .arg(r#"{"topic":"bad..topic","payload":1,"properties":{}}"#)
        .query_async(&mut support::raw(&server).await)
        .await
        .unwrap();
    let bus = bus_over(&store);
    bus.on("**", |_ctx| async { Ok(()) }).unwrap();
    bus.start().unwrap();
    settle(&bus, &store).await;
    let dead = letters(&store).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].error.contains("invalid topic"), "{dead:?}");
    assert_eq!(
        dead[0].event.as_ref().map(|e| e.topic.as_str()),
        Some("bad..topic")
    );
    close(bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_the_error_handler_swallows_is_acknowledged() {
    let server = server_or_skip!();
    let store = builder(&server, "c1").build().await.unwrap();
    let bus = EventBus::builder()
        .store(store.clone())
        .poll_wait(Duration::from_millis(100))
        .error_handler(|_event, _err| None)
        .build()
        .unwrap();
    bus.on_named("h", "job.run", |_ctx| async { Err("expected".into()) })
        .unwrap();
    bus.start().unwrap();
    emit(&bus, "job.run", "evt-1").await;
    settle(&bus, &store).await;
    assert!(letters(&store).await.is_empty());
    close(bus).await;
}

/// `fail` for an entry another consumer acknowledged meanwhile writes no
/// letter: the script only moves entries still pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_an_acknowledged_entry_writes_no_letter() {
    let server = server_or_skip!();
    let store = builder(&server, "c1").build().await.unwrap();
    let event = Event::new("job.run", 1);
    event.properties().set(PROPERTY_EVENT_ID, "evt-1");
    store
        .enqueue(&StoredEvent::from_event(&event).unwrap())
        .await
        .unwrap();
    let got = store.dequeue(1, Duration::from_millis(200)).await.unwrap();
    assert_eq!(got.len(), 1);
    store.ack(&[got[0].receipt.clone()]).await.unwrap();
    store
        .fail(&[soiree::FailedDelivery {
            receipt: got[0].receipt.clone(),
            error: "late".into(),
        }])
        .await
        .unwrap();
    assert!(letters(&store).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliver_policy_retries_the_delivery_then_dead_letters_it() {
    let server = server_or_skip!();
    let store = builder(&server, "c1")
        .on_failure(FailurePolicy::Redeliver)
        .claim_timeout(Duration::from_millis(200))
        .max_deliveries(2)
        .build()
        .await
        .unwrap();
    let bus = bus_over(&store);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    bus.on_named("h", "job.run", move |_ctx| {
        r.fetch_add(1, Ordering::SeqCst);
        async { Err("still broken".into()) }
    })
    .unwrap();
    bus.start().unwrap();
    emit(&bus, "job.run", "evt-1").await;
    assert!(
        eventually(LIMIT, || async { !letters(&store).await.is_empty() }).await,
        "dead-lettered after max_deliveries"
    );
    settle(&bus, &store).await;
    assert_eq!(runs.load(Ordering::SeqCst), 6, "2 deliveries of 3 attempts");
    let dead = letters(&store).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].deliveries, 3);
    assert!(dead[0].error.contains("still broken"), "{dead:?}");
    close(bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_policy_drops_failures() {
    let server = server_or_skip!();
    let store = builder(&server, "c1")
        .on_failure(FailurePolicy::Acknowledge)
        .build()
        .await
        .unwrap();
    let bus = bus_over(&store);
    bus.on_named("h", "job.run", |_ctx| async { Err("broken".into()) })
        .unwrap();
    bus.start().unwrap();
    emit(&bus, "job.run", "evt-1").await;
    settle(&bus, &store).await;
    assert!(letters(&store).await.is_empty());
    close(bus).await;
}
