//! Checks of snoozes: a listener that returns [`Snooze`] runs again after
//! the delay, as the same attempt, and the store's results show the snooze.
//! Short snoozes wait in the bus, so every store runs
//! [`bus_reruns_snoozed_listeners`]; long ones are kept by a queue that
//! [`defers`](soiree::EventQueue::defers), checked by
//! [`queue_defers_without_counting_a_delivery`] and
//! [`bus_keeps_long_snoozes_in_the_store`] (skipped elsewhere).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde_json::json;
use soiree::{DeferredDelivery, EventBus, EventQueue, EventStore, Snooze};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::bus::Shared;
use super::support::{drain, ok, receipts, stored_event, unique_id, within};
use super::{Conformance, Outcome};

const DELAY: Duration = Duration::from_millis(200);

/// A listener that snoozes once runs again after the delay with the same
/// attempt number, the emission reports no error, and the stored results
/// of the event are a snooze then a success.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn bus_reruns_snoozed_listeners(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let bus = ok(
        "build",
        EventBus::builder().shared_store(Arc::clone(&store)).build(),
    );
    let calls: Shared<(Instant, u32, Option<String>)> = Shared::new();
    let seen = calls.clone();
    let snoozed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    ok(
        "on_named",
        bus.on_named("conformance-snoozer", "conformance.snooze", move |ctx| {
            let seen = seen.clone();
            let snoozed = Arc::clone(&snoozed);
            async move {
                seen.push((Instant::now(), ctx.attempt(), ctx.event_id()));
                if !snoozed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    return Err(Snooze::after(DELAY).into());
                }
                Ok(())
            }
        }),
    );
    ok("start", bus.start());
    let mut emission = bus.emit("conformance.snooze", 1);
    let id = ok(
        "persisted",
        within(config, "the emit", emission.persisted()).await,
    );
    let errors: Vec<soiree::Error> = within(config, "the emission", emission.collect()).await;
    assert!(
        errors.is_empty(),
        "a snooze was reported as an error: {errors:?}"
    );
    within(config, "the bus to go idle", bus.wait_for_idle()).await;
    let calls = calls.take();
    assert_eq!(
        calls.len(),
        2,
        "a snoozed listener ran {} times",
        calls.len()
    );
    assert!(
        calls[1].0 - calls[0].0 >= DELAY,
        "re-run before the snooze ended"
    );
    assert_eq!(
        (calls[0].1, calls[1].1),
        (1, 1),
        "a snooze counted as an attempt"
    );
    let event_id = calls[0].2.clone().unwrap_or(id);
    if let Some(history) = store.history() {
        let page = ok(
            "results",
            within(config, "results", history.results(None, 10_000)).await,
        );
        let outcomes: Vec<&str> = page
            .items
            .iter()
            .filter(|r| r.event_id == event_id && r.handler_id == "conformance-snoozer")
            .map(|r| r.outcome())
            .collect();
        assert_eq!(
            outcomes,
            ["snoozed", "succeeded"],
            "the stored results do not show the snooze then the success"
        );
    }
    let _ = within(config, "close", bus.close()).await;
    Outcome::Passed
}

/// How long the store-side checks snooze: past
/// [`Snooze::IN_STORE_AFTER`], so that a queue that defers keeps it.
const LONG: Duration = Duration::from_secs(2);

/// The store's queue when it defers, else why the check skips.
fn deferring(store: &Arc<dyn EventStore>) -> Result<&dyn EventQueue, &'static str> {
    match store.queue() {
        None => Err(super::Ability::Queue.missing()),
        Some(queue) if !queue.defers() => Err(super::Ability::Deferral.missing()),
        Some(queue) => Ok(queue),
    }
}

/// A deferred delivery ([`EventQueue::defer`]) is not delivered again
/// before its due time, is delivered after it with the delivery count it
/// had (a snooze is not a delivery), and stays in the backlog meanwhile.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn queue_defers_without_counting_a_delivery(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let queue = match deferring(&store) {
        Ok(queue) => queue,
        Err(lack) => return Outcome::Skipped(lack),
    };
    let event = stored_event("conformance.defer", &unique_id("defer"), json!(1));
    ok(
        "enqueue",
        within(config, "enqueue", queue.enqueue(&event)).await,
    );
    let first = drain(queue, config, 1, 1).await.remove(0);
    let until = SystemTime::now() + LONG;
    ok(
        "defer",
        within(
            config,
            "defer",
            queue.defer(&[DeferredDelivery {
                receipt: first.receipt.clone(),
                until,
                reason: "conformance".to_owned(),
            }]),
        )
        .await,
    );
    let early = ok(
        "dequeue",
        within(
            config,
            "dequeue",
            queue.dequeue(1, config.empty_wait.min(LONG / 4)),
        )
        .await,
    );
    assert!(
        early.is_empty(),
        "a deferred delivery was delivered again before its due time"
    );
    assert_eq!(
        ok("backlog", within(config, "backlog", queue.backlog()).await),
        1,
        "a deferred delivery left the backlog"
    );
    let again = drain(queue, config, 1, 1).await.remove(0);
    let arrived = SystemTime::now();
    assert!(
        arrived >= until,
        "a deferred delivery came back {:?} before its due time",
        until.duration_since(arrived).unwrap_or_default()
    );
    assert_eq!(again.event.id(), event.id(), "another event came back");
    assert_eq!(
        again.delivery_count, first.delivery_count,
        "deferring counted a delivery"
    );
    ok(
        "ack",
        within(config, "ack", queue.ack(&receipts(&[again]))).await,
    );
    Outcome::Passed
}

/// A listener that snoozes for long on a queue that defers does not hold
/// a worker meanwhile: on a bus with one worker, an event emitted after the
/// snoozed one is handled before the snooze ends; the snoozed listener
/// runs again after its snooze (not before), as attempt 1, and once.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn bus_keeps_long_snoozes_in_the_store(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    if let Err(lack) = deferring(&store) {
        return Outcome::Skipped(lack);
    }
    let bus = ok(
        "build",
        EventBus::builder()
            .shared_store(Arc::clone(&store))
            .workers(1)
            .build(),
    );
    let snoozer: Shared<(Instant, u32)> = Shared::new();
    let seen = snoozer.clone();
    let snoozed = Arc::new(Notify::new());
    let told = Arc::clone(&snoozed);
    ok(
        "on_named",
        bus.on_named(
            "conformance-long-snoozer",
            "conformance.snooze.long",
            move |ctx| {
                let seen = seen.clone();
                let told = Arc::clone(&told);
                async move {
                    let first = seen.len() == 0;
                    seen.push((Instant::now(), ctx.attempt()));
                    if first {
                        told.notify_one();
                        return Err(Snooze::after(LONG).into());
                    }
                    Ok(())
                }
            },
        ),
    );
    let other: Shared<Instant> = Shared::new();
    let handled = Arc::new(Notify::new());
    let (seen, told) = (other.clone(), Arc::clone(&handled));
    ok(
        "on_named",
        bus.on_named(
            "conformance-other",
            "conformance.snooze.other",
            move |_ctx| {
                let seen = seen.clone();
                let told = Arc::clone(&told);
                async move {
                    seen.push(Instant::now());
                    told.notify_one();
                    Ok(())
                }
            },
        ),
    );
    ok("start", bus.start());
    let mut first = bus.emit("conformance.snooze.long", 1);
    ok(
        "persisted",
        within(config, "the emit", first.persisted()).await,
    );
    within(config, "the listener to snooze", snoozed.notified()).await;
    let mut second = bus.emit("conformance.snooze.other", 2);
    ok(
        "persisted",
        within(config, "the emit", second.persisted()).await,
    );
    within(config, "the other event", handled.notified()).await;
    // Bounded by the suite's timeout: the snoozed listener's second run.
    let deadline = Instant::now() + config.timeout;
    while snoozer.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "a listener snoozed in the store did not run again within {:?}",
            config.timeout
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    within(config, "the bus to go idle", bus.wait_for_idle()).await;
    let runs = snoozer.take();
    let other = other.take();
    assert_eq!(runs.len(), 2, "a snoozed listener ran {} times", runs.len());
    assert!(
        other[0] < runs[0].0 + LONG,
        "the other event waited for the snooze: the snooze held the only worker"
    );
    assert!(
        runs[1].0 - runs[0].0 >= LONG,
        "re-run {:?} after a snooze of {LONG:?}",
        runs[1].0 - runs[0].0
    );
    assert_eq!(
        (runs[0].1, runs[1].1),
        (1, 1),
        "a snooze kept by the store counted as an attempt"
    );
    let _ = within(config, "close", bus.close()).await;
    Outcome::Passed
}
