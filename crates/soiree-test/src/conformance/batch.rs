//! Checks of batch listeners ([`EventBus::on_batch`]) on a store: each
//! event of a batch keeps its own delivery, results and dedup. The bus
//! does the batching, so every store runs them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use soiree::{Backoff, Batch, Event, EventBus, EventStore, PROPERTY_EVENT_ID, RetryPolicy};

use super::bus::{Shared, all_results, assert_drained_and_close};
use super::support::{assert_emitted_without_errors, ok, unique_id, within};
use super::{Conformance, Outcome};

const TOPIC: &str = "conformance.batch";
const HANDLER: &str = "conformance-batch";
const EVENTS: usize = 4;
/// The event (by index) whose first attempt fails.
const FLAKY: usize = 1;
const MAX_ITEMS: usize = 4;
const MAX_WAIT: Duration = Duration::from_millis(300);

/// A batch listener on the store (at most 4 events a call)
/// whose outcome fails one event's first attempt: only that event runs
/// again (as attempt 2), every emission ends without error, the store
/// holds a result per event under the listener's name (a failure then a
/// success for the flaky one), the queue is drained, and — with dedup —
/// emitting the same event ids again runs the batch listener for none of
/// them.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn bus_batch_listener_settles_each_event_alone(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let retry = ok(
        "a retry policy",
        RetryPolicy::attempts(2)
            .map(|p| p.with_backoff(Backoff::constant(Duration::from_millis(20)))),
    );
    let bus = ok(
        "building a bus on the store",
        EventBus::builder()
            .shared_store(Arc::clone(&store))
            .workers(8)
            .retry(retry)
            .build(),
    );
    let ids: Vec<String> = (0..EVENTS).map(|_| unique_id("batch")).collect();
    let flaky = ids[FLAKY].clone();
    // (event id, attempt, size of its batch), one per event per call.
    let calls: Shared<(String, u32, usize)> = Shared::new();
    let seen = calls.clone();
    ok(
        "on_batch",
        bus.on_batch(HANDLER, TOPIC, MAX_ITEMS, MAX_WAIT, move |batch: Batch| {
            let seen = seen.clone();
            let flaky = flaky.clone();
            async move {
                let mut outcome = batch.succeeded();
                for (index, ctx) in batch.iter().enumerate() {
                    let id = ctx.event_id().unwrap_or_default();
                    if id == flaky && ctx.attempt() == 1 {
                        outcome.fail(index, "conformance: the flaky event's first attempt");
                    }
                    seen.push((id, ctx.attempt(), batch.len()));
                }
                Ok(outcome)
            }
        }),
    );
    ok("start", bus.start());
    let emit = |bus: &EventBus| {
        ids.iter()
            .enumerate()
            .map(|(n, id)| {
                let event = Event::new(TOPIC, json!({ "n": n }));
                event.properties().set(PROPERTY_EVENT_ID, id.as_str());
                bus.emit_event(event)
            })
            .collect::<Vec<_>>()
    };
    assert_emitted_without_errors(config, "emitting to a batch listener", emit(&bus)).await;
    within(config, "the bus to go idle", bus.wait_for_idle()).await;

    let calls_made = calls.take();
    assert!(
        calls_made.iter().all(|(_, _, size)| *size <= MAX_ITEMS),
        "a batch held more than max_items events: {calls_made:?}"
    );
    let mut runs: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (id, attempt, _) in &calls_made {
        runs.entry(id.clone()).or_default().push(*attempt);
    }
    for (n, id) in ids.iter().enumerate() {
        let expected: &[u32] = if n == FLAKY { &[1, 2] } else { &[1] };
        assert_eq!(
            runs.get(id).map(Vec::as_slice),
            Some(expected),
            "event {n} ran with these attempts (only the failed event is retried): {runs:?}"
        );
    }
    if let Some(results) = all_results(&store, config).await {
        for (n, id) in ids.iter().enumerate() {
            let mut outcomes: Vec<&str> = results
                .iter()
                .filter(|r| &r.event_id == id && r.handler_id == HANDLER)
                .map(soiree::StoredResult::outcome)
                .collect();
            outcomes.sort_unstable();
            let expected: &[&str] = if n == FLAKY {
                &["failed", "succeeded"]
            } else {
                &["succeeded"]
            };
            assert_eq!(
                outcomes, expected,
                "the stored results of event {n} under the batch listener's name"
            );
        }
    }
    if store.dedup().is_some() {
        assert_emitted_without_errors(config, "emitting the same events again", emit(&bus)).await;
        within(config, "the bus to go idle", bus.wait_for_idle()).await;
        let again = calls.take();
        assert!(
            again.is_empty(),
            "events whose batch listener succeeded ran it again: {again:?}"
        );
    }
    assert_drained_and_close(bus, &store, config).await;
    Outcome::Passed
}
