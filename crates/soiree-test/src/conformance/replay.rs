//! Bus-level checks of what a store adds to delivery: skipping listeners that
//! already succeeded, and carrying events from one bus to another.

use std::sync::Arc;

use serde_json::{Value, json};
use soiree::{Event, EventBus, EventStore, PROPERTY_EVENT_ID, StoredResult};

use super::bus::{Shared, assert_drained_and_close, bus_on, close, settle};
use super::support::{assert_emitted_without_errors, ok, unique_id, within};
use super::{Ability, Conformance, Outcome};

const REPLAY_TOPIC: &str = "conformance.replay.sent";
const DONE_HANDLER: &str = "conformance-replay-done";
const OTHER_HANDLER: &str = "conformance-replay-other";
const PIPELINE_TOPIC: &str = "conformance.pipeline.sent";
const PIPELINE_HANDLER: &str = "conformance-pipeline";
const PIPELINE_EVENTS: usize = 10;

/// A listener that already succeeded for an event id (a result saved before,
/// as by an earlier process) is skipped when an event with that id is
/// emitted again; the event's other listeners, and the same listener on other
/// events, still run.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn bus_skips_listeners_that_already_succeeded(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    if store.dedup().is_none() {
        return Outcome::Skipped(Ability::Dedup.missing());
    }
    let done = unique_id("replay");
    let fresh = unique_id("replay");
    let earlier = StoredResult::new(REPLAY_TOPIC, &done, DONE_HANDLER, 1, None);
    ok(
        "save_handler_result",
        within(
            config,
            "save_handler_result",
            store.save_handler_result(&earlier),
        )
        .await,
    );

    let (bus, handler_errors) = bus_on(&store);
    let calls: Shared<(&'static str, Option<String>)> = Shared::new();
    for handler in [DONE_HANDLER, OTHER_HANDLER] {
        let recorder = calls.clone();
        let registered = bus.on_named(handler, REPLAY_TOPIC, move |ctx| {
            let recorder = recorder.clone();
            async move {
                recorder.push((handler, ctx.event_id()));
                Ok(())
            }
        });
        ok("registering a listener", registered);
    }
    ok("starting the bus", bus.start());
    let emissions = [&done, &fresh].map(|id| {
        let event = Event::new(REPLAY_TOPIC, json!({ "id": id }));
        event.properties().set(PROPERTY_EVENT_ID, id.as_str());
        bus.emit(REPLAY_TOPIC, event)
    });
    assert_emitted_without_errors(config, "emitting to listeners that succeed", emissions).await;
    settle(&bus, config).await;

    let mut calls = calls.take();
    calls.sort();
    let mut expected = vec![
        (DONE_HANDLER, Some(fresh.clone())),
        (OTHER_HANDLER, Some(done.clone())),
        (OTHER_HANDLER, Some(fresh.clone())),
    ];
    expected.sort();
    assert_eq!(
        calls, expected,
        "a listener that already succeeded for an event id should be skipped for that id only"
    );
    let handler_errors = handler_errors.take();
    assert!(
        handler_errors.is_empty(),
        "the error handler saw {handler_errors:?}"
    );
    assert_drained_and_close(bus, &store, config).await;
    Outcome::Passed
}

/// Events emitted by a bus that only produces (`consume(false)`) wait in the
/// queue, and a second bus on the same store, with the listener, handles each
/// of them once and empties the queue: the store carries events between
/// processes.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn queue_carries_events_between_buses(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(queue) = store.queue() else {
        return Outcome::Skipped(Ability::Queue.missing());
    };
    let producer = EventBus::builder()
        .shared_store(Arc::clone(&store))
        .consume(false)
        .build();
    let producer = ok("building a producer bus", producer);
    let emissions = (0..PIPELINE_EVENTS).map(|n| producer.emit(PIPELINE_TOPIC, json!({ "n": n })));
    assert_emitted_without_errors(config, "enqueueing from a producer bus", emissions).await;
    let backlog = ok("backlog", within(config, "backlog", queue.backlog()).await);
    assert_eq!(
        backlog, PIPELINE_EVENTS as u64,
        "{PIPELINE_EVENTS} events were emitted by a bus that does not consume, but the backlog is {backlog}"
    );

    let (consumer, handler_errors) = bus_on(&store);
    let handled: Shared<Value> = Shared::new();
    let recorder = handled.clone();
    let registered = consumer.on_named(PIPELINE_HANDLER, PIPELINE_TOPIC, move |ctx| {
        let recorder = recorder.clone();
        async move {
            recorder.push(ctx.payload().decode::<Value>()?);
            Ok(())
        }
    });
    ok("registering a listener", registered);
    ok("starting the consumer", consumer.start());
    settle(&consumer, config).await;

    let mut seen: Vec<u64> = handled
        .take()
        .iter()
        .map(|payload| {
            payload["n"].as_u64().unwrap_or_else(|| {
                panic!("the consumer got a payload other than the one emitted: {payload}")
            })
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..PIPELINE_EVENTS as u64).collect::<Vec<_>>(),
        "the consuming bus did not handle each produced event exactly once"
    );
    let handler_errors = handler_errors.take();
    assert!(
        handler_errors.is_empty(),
        "the error handler saw {handler_errors:?}"
    );
    let backlog = ok("backlog", within(config, "backlog", queue.backlog()).await);
    assert_eq!(
        backlog, 0,
        "the queue's backlog is {backlog} after the consuming bus went idle"
    );
    close(consumer, config).await;
    close(producer, config).await;
    Outcome::Passed
}
