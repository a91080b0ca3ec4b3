//! Batch listeners: up to `max_items` events in one call, after at most
//! `max_wait`; an outcome per event, only the failed ones retried or
//! dead-lettered; a panic fails the whole batch; close flushes a partial one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use soiree::{
    Backoff, Batch, BoxError, Error, Event, EventBus, ListenerPanic, MemoryStore,
    PROPERTY_EVENT_ID, RetryPolicy, permanent,
};
use tokio::time::Instant;

/// One call of a batch listener: when it ran, and each event's (payload,
/// attempt).
#[derive(Debug, Clone)]
struct Call {
    at: Instant,
    items: Vec<(u32, u32)>,
}

type Calls = Arc<Mutex<Vec<Call>>>;

/// A batch listener on `work.item` that records its calls and fails the
/// events whose payload `fails` picks (given the payload and attempt).
fn recording(
    bus: &EventBus,
    max_items: usize,
    max_wait: Duration,
    fails: impl Fn(u32, u32) -> Option<BoxError> + Send + Sync + 'static,
) -> Calls {
    let calls = Calls::default();
    let seen = Arc::clone(&calls);
    let fails = Arc::new(fails);
    bus.on_batch(
        "batcher",
        "work.item",
        max_items,
        max_wait,
        move |batch: Batch| {
            let seen = Arc::clone(&seen);
            let fails = Arc::clone(&fails);
            async move {
                let items: Vec<(u32, u32)> = batch
                    .iter()
                    .map(|ctx| (payload(ctx.event()), ctx.attempt()))
                    .collect();
                seen.lock().unwrap().push(Call {
                    at: Instant::now(),
                    items: items.clone(),
                });
                let mut outcome = batch.succeeded();
                for (index, (item, attempt)) in items.into_iter().enumerate() {
                    if let Some(error) = fails(item, attempt) {
                        outcome.fail(index, error);
                    }
                }
                Ok(outcome)
            }
        },
    )
    .unwrap();
    calls
}

/// The payload, whether in memory or decoded back from a store.
fn payload(event: &Event) -> u32 {
    soiree::unwrap_payload::<u32>(event).expect("a u32 payload")
}

fn never(_: u32, _: u32) -> Option<BoxError> {
    None
}

/// Emits items `0..n` at once and collects each emission's errors.
async fn emit_all(bus: &EventBus, n: u32) -> Vec<Vec<Error>> {
    let emissions: Vec<_> = (0..n).map(|item| bus.emit("work.item", item)).collect();
    let mut errors = Vec::new();
    for emission in emissions {
        errors.push(emission.collect::<Vec<Error>>().await);
    }
    errors
}

fn taken(calls: &Calls) -> Vec<Call> {
    calls.lock().unwrap().clone()
}

fn sorted_items(call: &Call) -> Vec<u32> {
    let mut items: Vec<u32> = call.items.iter().map(|(item, _)| *item).collect();
    items.sort_unstable();
    items
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_runs_at_once_without_waiting_for_max_wait() {
    let bus = EventBus::builder().workers(8).build().unwrap();
    let max_wait = Duration::from_secs(3600);
    let calls = recording(&bus, 4, max_wait, never);
    let started = Instant::now();
    let errors = emit_all(&bus, 4).await;
    assert!(errors.iter().all(Vec::is_empty), "{errors:?}");
    let calls = taken(&calls);
    assert_eq!(calls.len(), 1, "one call for four events: {calls:?}");
    assert_eq!(sorted_items(&calls[0]), [0, 1, 2, 3]);
    assert!(
        calls[0].at - started < max_wait,
        "a full batch waited for max_wait"
    );
}

#[tokio::test(start_paused = true)]
async fn max_items_splits_a_burst_into_full_batches() {
    let bus = EventBus::builder().workers(8).build().unwrap();
    let calls = recording(&bus, 3, Duration::from_secs(3600), never);
    let errors = emit_all(&bus, 6).await;
    assert!(errors.iter().all(Vec::is_empty), "{errors:?}");
    let calls = taken(&calls);
    let sizes: Vec<usize> = calls.iter().map(|call| call.items.len()).collect();
    assert_eq!(sizes, [3, 3], "never more than max_items in one call");
}

#[tokio::test(start_paused = true)]
async fn a_partial_batch_runs_once_max_wait_has_passed() {
    let bus = EventBus::builder().workers(8).build().unwrap();
    let max_wait = Duration::from_secs(5);
    let calls = recording(&bus, 10, max_wait, never);
    let started = Instant::now();
    let errors = emit_all(&bus, 3).await;
    assert!(errors.iter().all(Vec::is_empty), "{errors:?}");
    let calls = taken(&calls);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(sorted_items(&calls[0]), [0, 1, 2]);
    assert!(
        calls[0].at - started >= max_wait,
        "a partial batch ran before max_wait"
    );
    // The paused clock moves only when every task waits: the batch ran at
    // its timer, not later.
    assert!(calls[0].at - started < max_wait * 2);
}

#[tokio::test(start_paused = true)]
async fn only_the_failed_events_are_retried_in_a_later_batch() {
    let retry = RetryPolicy::attempts(2)
        .unwrap()
        .with_backoff(Backoff::constant(Duration::from_millis(10)));
    let bus = EventBus::builder().workers(8).retry(retry).build().unwrap();
    // Odd items fail on their first attempt.
    let calls = recording(&bus, 4, Duration::from_millis(50), |item, attempt| {
        (item % 2 == 1 && attempt == 1).then(|| "odd, try again".into())
    });
    let errors = emit_all(&bus, 4).await;
    assert!(errors.iter().all(Vec::is_empty), "{errors:?}");
    let calls = taken(&calls);
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(sorted_items(&calls[0]), [0, 1, 2, 3]);
    let mut retried = calls[1].items.clone();
    retried.sort_unstable();
    assert_eq!(retried, [(1, 2), (3, 2)], "only the failed, as attempt 2");
}

#[tokio::test(start_paused = true)]
async fn a_failed_event_reports_its_own_error_and_no_other() {
    let bus = EventBus::builder().workers(8).build().unwrap();
    let _calls = recording(&bus, 4, Duration::from_millis(50), |item, _| {
        (item == 2).then(|| permanent("item 2 is bad"))
    });
    let errors = emit_all(&bus, 4).await;
    for (item, errors) in errors.iter().enumerate() {
        if item == 2 {
            let [Error::Listener { source, .. }] = errors.as_slice() else {
                panic!("expected one listener error for item 2, got {errors:?}");
            };
            assert_eq!(source.to_string(), "item 2 is bad");
        } else {
            assert!(errors.is_empty(), "item {item}: {errors:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn on_a_queue_store_only_the_failed_event_is_dead_lettered_and_successes_are_skipped_after() {
    let store = Arc::new(MemoryStore::queue());
    let bus = EventBus::builder()
        .workers(8)
        .shared_store(store.clone())
        .build()
        .unwrap();
    let calls = recording(&bus, 4, Duration::from_millis(50), |item, _| {
        (item == 1).then(|| permanent("item 1 is bad"))
    });
    bus.start().unwrap();
    let emit_with_ids = || {
        (0..4u32)
            .map(|item| {
                let event = Event::new("work.item", item);
                event
                    .properties()
                    .set(PROPERTY_EVENT_ID, format!("item-{item}"));
                bus.emit_event(event)
            })
            .collect::<Vec<_>>()
    };
    for mut emission in emit_with_ids() {
        emission.persisted().await.unwrap();
    }
    bus.wait_for_idle().await;
    let dead: Vec<String> = store
        .dead_letters()
        .into_iter()
        .map(|(event, _)| event.id().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(dead, ["item-1"], "only the failed event is dead-lettered");
    let mut outcomes: Vec<(String, &str)> = store
        .results()
        .iter()
        .map(|r| (r.event_id.clone(), r.outcome()))
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("item-0".to_owned(), "succeeded"),
            ("item-1".to_owned(), "failed"),
            ("item-2".to_owned(), "succeeded"),
            ("item-3".to_owned(), "succeeded"),
        ],
        "one result per event"
    );

    // Delivered again: the events that succeeded skip the batch listener.
    let before = taken(&calls).len();
    for mut emission in emit_with_ids() {
        emission.persisted().await.unwrap();
    }
    bus.wait_for_idle().await;
    let again: Vec<u32> = taken(&calls)[before..]
        .iter()
        .flat_map(|call| call.items.iter().map(|(item, _)| *item))
        .collect();
    assert_eq!(again, [1], "only the event that failed ran again");
    bus.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_panicking_batch_fails_each_of_its_events_and_the_bus_goes_on() {
    let panics: Arc<Mutex<Vec<ListenerPanic>>> = Arc::default();
    let heard = Arc::clone(&panics);
    let registry = soiree::MetricsRegistry::new();
    let bus = EventBus::builder()
        .workers(8)
        .metrics_registry(registry.clone())
        .panic_handler(move |panic| heard.lock().unwrap().push(panic.clone()))
        .build()
        .unwrap();
    let panicked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    bus.on_batch(
        "exploder",
        "work.item",
        3,
        Duration::from_millis(50),
        move |batch: Batch| {
            let first = !panicked.swap(true, std::sync::atomic::Ordering::SeqCst);
            async move {
                assert!(!first, "boom in a batch of {}", batch.len());
                Ok(batch.succeeded())
            }
        },
    )
    .unwrap();
    let errors = emit_all(&bus, 3).await;
    for errors in &errors {
        let [
            Error::Panicked {
                listener_id,
                message,
            },
        ] = errors.as_slice()
        else {
            panic!("expected one panic per event, got {errors:?}");
        };
        assert_eq!(listener_id.as_str(), "exploder");
        assert!(message.contains("boom in a batch of 3"), "{message}");
    }
    assert_eq!(panics.lock().unwrap().len(), 3, "one report per event");
    let text = registry.encode();
    let panic_count = text
        .lines()
        .find(|line| {
            line.starts_with("soiree_listener_calls_total")
                && line.contains(r#"listener="exploder""#)
                && line.contains(r#"outcome="panic""#)
        })
        .and_then(|line| line.rsplit(' ').next()?.parse::<u64>().ok());
    assert_eq!(panic_count, Some(3), "{text}");
    // The next batch runs as usual.
    let errors = emit_all(&bus, 3).await;
    assert!(errors.iter().all(Vec::is_empty), "{errors:?}");
}

#[tokio::test(start_paused = true)]
async fn close_runs_a_partial_batch_without_waiting_for_max_wait() {
    let bus = EventBus::builder().workers(8).build().unwrap();
    let max_wait = Duration::from_secs(3600);
    let calls = recording(&bus, 10, max_wait, never);
    let started = Instant::now();
    let emissions: Vec<_> = (0..2u32).map(|item| bus.emit("work.item", item)).collect();
    // Let both events reach the batch (the paused clock runs every ready
    // task before it moves).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(taken(&calls).is_empty(), "the batch ran before it was full");
    bus.close().await.unwrap();
    for emission in emissions {
        let errors: Vec<Error> = emission.collect().await;
        assert!(errors.is_empty(), "{errors:?}");
    }
    let calls = taken(&calls);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(sorted_items(&calls[0]), [0, 1]);
    assert!(
        calls[0].at - started < max_wait,
        "close waited for max_wait"
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_error_fails_every_event_and_missing_outcomes_fail_theirs() {
    let bus = EventBus::builder().workers(8).build().unwrap();
    bus.on_batch(
        "whole",
        "work.item",
        2,
        Duration::from_millis(10),
        |_batch: Batch| async { Err::<soiree::BatchOutcome, BoxError>(permanent("database down")) },
    )
    .unwrap();
    let errors = emit_all(&bus, 2).await;
    for errors in &errors {
        let [Error::Listener { source, .. }] = errors.as_slice() else {
            panic!("expected one listener error per event, got {errors:?}");
        };
        assert!(source.is::<soiree::Permanent>(), "stays permanent");
        assert_eq!(source.to_string(), "database down");
    }

    let bus = EventBus::builder().workers(8).build().unwrap();
    bus.on_batch(
        "short",
        "work.item",
        2,
        Duration::from_millis(10),
        |_batch: Batch| async { Ok(vec![Ok(())].into()) },
    )
    .unwrap();
    let errors = emit_all(&bus, 2).await;
    let failed: Vec<String> = errors.iter().flatten().map(ToString::to_string).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("1 outcomes for a batch of 2"),
        "{failed:?}"
    );
}

#[tokio::test]
async fn max_items_of_zero_is_refused() {
    let bus = EventBus::new();
    let refused = bus.on_batch(
        "none",
        "work.item",
        0,
        Duration::ZERO,
        |batch: Batch| async move { Ok(batch.succeeded()) },
    );
    assert!(
        matches!(refused, Err(Error::InvalidConfig(_))),
        "{refused:?}"
    );
}
