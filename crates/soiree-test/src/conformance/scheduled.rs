//! Checks of delayed events: a queue that schedules
//! ([`EventQueue::schedules`](soiree::EventQueue::schedules)) holds an
//! event until its due time, never delivers it early, and cancels it by id.
//! Stores that do not schedule yet are skipped, not failed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde_json::json;
use soiree::{Event, EventBus, EventQueue, EventStore, PROPERTY_DUE_AT, StoredEvent};
use tokio::time::Instant;

use super::bus::Shared;
use super::support::{drain, ok, receipts, stored_event, unique_id, within};
use super::{Conformance, Outcome};

const NO_SCHEDULING: &str = super::Ability::Scheduling.missing();

/// How far ahead the checks schedule: long enough to see that nothing
/// comes early, short enough for a quick check.
const DELAY: Duration = Duration::from_secs(1);

fn delayed(topic: &str, due: SystemTime) -> StoredEvent {
    let event = Event::new(topic, json!({ "delayed": true })).deliver_at(due);
    event
        .properties()
        .set(soiree::PROPERTY_EVENT_ID, unique_id("scheduled"));
    ok("StoredEvent::from_event", StoredEvent::from_event(&event))
}

fn scheduling(store: &Arc<dyn EventStore>) -> Option<&dyn EventQueue> {
    store.queue().filter(|queue| queue.schedules())
}

/// A delayed event is not dequeued before its due time, an event without
/// one enqueued after it is delivered first, and the delayed one arrives
/// once due, with its due time ([`PROPERTY_DUE_AT`]) intact.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn queue_holds_delayed_events_until_due(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(queue) = scheduling(&store) else {
        return Outcome::Skipped(NO_SCHEDULING);
    };
    let due = SystemTime::now() + DELAY;
    let later = delayed("conformance.scheduled.later", due);
    let now = stored_event(
        "conformance.scheduled.now",
        &unique_id("scheduled"),
        json!(1),
    );
    ok(
        "enqueue",
        within(config, "enqueue", queue.enqueue(&later)).await,
    );
    ok(
        "enqueue",
        within(config, "enqueue", queue.enqueue(&now)).await,
    );

    let mut got = Vec::new();
    for _ in 0..2 {
        if got.len() >= 2 {
            break;
        }
        let batch = drain(queue, config, 1, 10).await;
        let arrived = SystemTime::now();
        for delivery in &batch {
            if delivery.event.id() == later.id() {
                assert!(
                    arrived >= due,
                    "a delayed event was delivered {:?} before its due time",
                    due.duration_since(arrived).unwrap_or_default()
                );
            }
        }
        ok(
            "ack",
            within(config, "ack", queue.ack(&receipts(&batch))).await,
        );
        got.extend(batch);
    }
    assert_eq!(got.len(), 2, "expected two deliveries, got {}", got.len());
    assert_eq!(
        got[0].event.id(),
        now.id(),
        "an event without a due time waited behind a delayed one"
    );
    assert_eq!(got[1].event.id(), later.id());
    assert_eq!(
        got[1].event.properties.get(PROPERTY_DUE_AT),
        later.properties.get(PROPERTY_DUE_AT),
        "the due time did not survive the queue"
    );
    Outcome::Passed
}

/// A delayed event cancelled before its due time is never delivered; the
/// cancel reports `true` once, then `false`, and `false` for an unknown id.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn cancelled_delayed_events_are_never_delivered(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(queue) = scheduling(&store) else {
        return Outcome::Skipped(NO_SCHEDULING);
    };
    let due = SystemTime::now() + DELAY;
    let event = delayed("conformance.scheduled.cancelled", due);
    let id = event.id().unwrap_or_default().to_owned();
    ok(
        "enqueue",
        within(config, "enqueue", queue.enqueue(&event)).await,
    );
    let cancel = |id: String| async move {
        ok(
            "cancel_scheduled",
            within(config, "cancel_scheduled", queue.cancel_scheduled(&id)).await,
        )
    };
    assert!(
        cancel(id.clone()).await,
        "cancelling a delayed event failed"
    );
    assert!(!cancel(id).await, "a delayed event was cancelled twice");
    assert!(
        !cancel(unique_id("unknown")).await,
        "an unknown event was reported cancelled"
    );
    // Past the due time, nothing comes.
    let until = Instant::now() + DELAY + Duration::from_millis(500);
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        let got = ok(
            "dequeue",
            within(config, "dequeue", queue.dequeue(10, left)).await,
        );
        assert!(got.is_empty(), "a cancelled delayed event was delivered");
    }
    Outcome::Passed
}

/// On a bus over the store, an event emitted with
/// [`EventBus::emit_after`] runs its listener once, at or after its due
/// time. A bus without a queue holds it itself; a queue store must
/// schedule.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn bus_delivers_delayed_events_when_due(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    if store.queue().is_some() && scheduling(&store).is_none() {
        return Outcome::Skipped(NO_SCHEDULING);
    }
    let bus = ok(
        "build",
        EventBus::builder().shared_store(Arc::clone(&store)).build(),
    );
    let ran: Shared<SystemTime> = Shared::new();
    let seen = ran.clone();
    ok(
        "on_named",
        bus.on_named(
            "conformance-delayed",
            "conformance.scheduled.bus",
            move |_ctx| {
                let seen = seen.clone();
                async move {
                    seen.push(SystemTime::now());
                    Ok(())
                }
            },
        ),
    );
    ok("start", bus.start());
    let due = SystemTime::now() + DELAY;
    let mut emission = bus.emit_at("conformance.scheduled.bus", 1, due);
    ok(
        "persisted",
        within(config, "the delayed emit", emission.persisted()).await,
    );
    let errors: Vec<soiree::Error> = within(config, "the emission", emission.collect()).await;
    assert!(errors.is_empty(), "a delayed emit failed: {errors:?}");
    let deadline = Instant::now() + config.timeout;
    let mut runs = Vec::new();
    while runs.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        runs = ran.take();
    }
    within(config, "the bus to go idle", bus.wait_for_idle()).await;
    runs.extend(ran.take());
    assert_eq!(runs.len(), 1, "a delayed event ran {} times", runs.len());
    assert!(runs[0] >= due, "a delayed event ran before its due time");
    let _ = within(config, "close", bus.close()).await;
    Outcome::Passed
}
