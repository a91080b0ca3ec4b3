//! End-to-end checks: an [`EventBus`] running on the store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use serde_json::{Value, json};
use soiree::{Error, EventBus, EventStore, StoredResult};

use super::support::{assert_emitted_without_errors, ok, read_all, within};
use super::{Conformance, Outcome};

const DELIVERY_TOPIC: &str = "conformance.bus.delivered";
const DELIVERY_HANDLER: &str = "conformance-delivery";
const FAILING_TOPIC: &str = "conformance.bus.failing";
const FAILING_HANDLER: &str = "conformance-failing";
const FAILURE: &str = "conformance failure";

/// A list shared between the check and the bus's listeners and handlers.
#[derive(Debug)]
pub(super) struct Shared<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Shared<T> {
    pub(super) fn new() -> Self {
        Self(Arc::new(Mutex::new(Vec::new())))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        // A panicking listener must not hide what the others recorded.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn push(&self, item: T) {
        self.lock().push(item);
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(super) fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.lock())
    }
}

/// What the bus's error handler was given.
#[derive(Debug)]
pub(super) struct HandledError {
    pub(super) event_id: Option<String>,
    pub(super) listener_id: Option<String>,
    pub(super) message: String,
    pub(super) serialization: bool,
}

/// A bus on `store` whose error handler records every error it sees.
pub(super) fn bus_on(store: &Arc<dyn EventStore>) -> (EventBus, Shared<HandledError>) {
    let seen = Shared::new();
    let recorder = seen.clone();
    let bus = EventBus::builder()
        .shared_store(Arc::clone(store))
        .error_handler(move |event, err| {
            let listener_id = match &err {
                Error::Listener { listener_id, .. } | Error::Panicked { listener_id, .. } => {
                    Some(listener_id.to_string())
                }
                _ => None,
            };
            recorder.push(HandledError {
                event_id: event.id(),
                listener_id,
                message: err.to_string(),
                serialization: matches!(err, Error::Serialization(_)),
            });
            Some(err)
        })
        .build();
    (ok("building a bus on the store", bus), seen)
}

/// Waits for the bus to finish everything.
pub(super) async fn settle(bus: &EventBus, config: &Conformance) {
    within(config, "the bus to become idle", bus.wait_for_idle()).await;
}

/// Checks that a queue store holds nothing unacknowledged once the bus went
/// idle, then closes the bus.
pub(super) async fn assert_drained_and_close(
    bus: EventBus,
    store: &Arc<dyn EventStore>,
    config: &Conformance,
) {
    if let Some(queue) = store.queue() {
        let backlog = ok("backlog", within(config, "backlog", queue.backlog()).await);
        assert_eq!(
            backlog, 0,
            "the queue's backlog is {backlog} after the bus went idle"
        );
    }
    close(bus, config).await;
}

/// Closes the bus.
pub(super) async fn close(bus: EventBus, config: &Conformance) {
    ok(
        "closing the bus",
        within(config, "the bus to close", bus.close()).await,
    );
}

/// Every result the store holds, when it has a history.
pub(super) async fn all_results(
    store: &Arc<dyn EventStore>,
    config: &Conformance,
) -> Option<Vec<StoredResult>> {
    let history = store.history()?;
    let read = read_all("history().results", 500, |cursor| async move {
        history.results(cursor.as_deref(), 500).await
    });
    Some(within(config, "history().results", read).await)
}

/// Every event the store holds, when it has a history.
pub(super) async fn all_events(
    store: &Arc<dyn EventStore>,
    config: &Conformance,
) -> Option<Vec<soiree::StoredEvent>> {
    let history = store.history()?;
    let read = read_all("history().events", 500, |cursor| async move {
        history.events(cursor.as_deref(), 500).await
    });
    Some(within(config, "history().events", read).await)
}

/// A bus on the store, with a named listener, handles every one of
/// [`Conformance::bus_events`] emitted events exactly once (by event id and
/// payload); the store then holds each event once and one successful result
/// per event, its dedup knows the listener succeeded, and its queue (if any)
/// is empty. With a queue store the bus's own consumers do the dispatching,
/// and the store's history is expected to hold the enqueued events.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn bus_delivers_each_event_once(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let count = config.bus_events;
    let (bus, handler_errors) = bus_on(&store);
    let handled: Shared<(Value, Option<String>)> = Shared::new();
    let recorder = handled.clone();
    let registered = bus.on_named(DELIVERY_HANDLER, DELIVERY_TOPIC, move |ctx| {
        let recorder = recorder.clone();
        async move {
            let payload: Value = ctx.payload().decode()?;
            recorder.push((payload, ctx.event_id()));
            Ok(())
        }
    });
    ok("registering a listener", registered);
    ok("starting the bus", bus.start());

    let emissions = (0..count).map(|n| bus.emit(DELIVERY_TOPIC, json!({ "n": n })));

    assert_emitted_without_errors(config, "emitting to a listener that succeeds", emissions).await;
    settle(&bus, config).await;

    let handled = handled.take();
    assert_eq!(
        handled.len(),
        count,
        "{count} events were emitted but the listener ran {} times",
        handled.len()
    );
    let mut by_n: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (payload, event_id) in &handled {
        let n = payload["n"].as_u64().unwrap_or_else(|| {
            panic!("the listener got a payload other than the one emitted: {payload}")
        });
        let event_id = event_id
            .clone()
            .unwrap_or_else(|| panic!("event {n} reached the listener without a soiree.event_id"));
        by_n.entry(n).or_default().push(event_id);
    }
    let expected: Vec<u64> = (0..count as u64).collect();
    assert_eq!(
        by_n.keys().copied().collect::<Vec<_>>(),
        expected,
        "the listener did not see every emitted payload exactly once"
    );
    let ids: BTreeSet<String> = by_n.values().flatten().cloned().collect();
    assert_eq!(
        ids.len(),
        count,
        "events were handled under {} distinct ids, not {count}",
        ids.len()
    );
    let handler_errors = handler_errors.take();
    assert!(
        handler_errors.is_empty(),
        "the error handler saw errors from a listener that succeeds: {handler_errors:?}"
    );

    if let Some(events) = all_events(&store, config).await {
        let stored: Vec<String> = events
            .iter()
            .filter(|event| event.topic == DELIVERY_TOPIC)
            .filter_map(|event| event.id().map(str::to_owned))
            .collect();
        assert_eq!(
            stored.len(),
            count,
            "the store's history holds {} of the {count} emitted events (a queue store's history includes what it queued)",
            stored.len()
        );
        assert_eq!(
            stored.into_iter().collect::<BTreeSet<_>>(),
            ids,
            "the stored events' ids are not the handled events' ids"
        );
    }
    if let Some(results) = all_results(&store, config).await {
        let mine: Vec<&StoredResult> = results
            .iter()
            .filter(|result| result.handler_id == DELIVERY_HANDLER)
            .collect();
        assert_eq!(
            mine.len(),
            count,
            "the store holds {} results for {count} handled events",
            mine.len()
        );
        for result in &mine {
            assert!(
                result.succeeded(),
                "a successful listener's result was stored as failed: {result:?}"
            );
            assert_eq!(
                result.attempt, 1,
                "a first attempt was stored as attempt {}",
                result.attempt
            );
            assert_eq!(
                result.topic, DELIVERY_TOPIC,
                "a result was stored with the wrong topic"
            );
        }
        let result_ids: BTreeSet<String> =
            mine.iter().map(|result| result.event_id.clone()).collect();
        assert_eq!(
            result_ids, ids,
            "the results' event ids are not the handled events' ids"
        );
    }
    if let Some(dedup) = store.dedup() {
        for id in &ids {
            let done = within(
                config,
                "handler_succeeded",
                dedup.handler_succeeded(id, DELIVERY_HANDLER),
            )
            .await;
            assert!(
                ok("handler_succeeded", done),
                "dedup does not know that the listener handled {id}"
            );
        }
    }
    assert_drained_and_close(bus, &store, config).await;
    Outcome::Passed
}

/// A failing listener's error is reported: for a queue store (the bus's
/// consumers dispatch) to the bus's error handler, otherwise on the emission
/// (and to the error handler). The store holds one failed result with the
/// error's text, its dedup does not count the failure, and its queue (if
/// any) is empty afterwards: the event was handled, unsuccessfully.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn bus_reports_listener_errors(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let queued = store.queue().is_some();
    let (bus, handler_errors) = bus_on(&store);
    let calls: Shared<Option<String>> = Shared::new();
    let recorder = calls.clone();
    let registered = bus.on_named(FAILING_HANDLER, FAILING_TOPIC, move |ctx| {
        let recorder = recorder.clone();
        async move {
            recorder.push(ctx.event_id());
            Err(FAILURE.into())
        }
    });
    ok("registering a listener", registered);
    ok("starting the bus", bus.start());

    let emission = bus.emit(FAILING_TOPIC, json!({ "fail": true }));
    let emitted: Vec<Error> = within(config, "the emission to finish", emission.collect()).await;
    settle(&bus, config).await;

    let calls = calls.take();
    assert_eq!(
        calls.len(),
        1,
        "the failing listener ran {} times for one event (no retries)",
        calls.len()
    );
    let event_id = calls[0]
        .clone()
        .unwrap_or_else(|| panic!("the event reached the listener without a soiree.event_id"));

    let handler_errors = handler_errors.take();
    assert_eq!(
        handler_errors.len(),
        1,
        "the error handler saw {} errors for one failing listener: {handler_errors:?}",
        handler_errors.len()
    );
    let seen = &handler_errors[0];
    assert_eq!(
        seen.listener_id.as_deref(),
        Some(FAILING_HANDLER),
        "the error handler got {seen:?}"
    );
    assert_eq!(
        seen.event_id.as_deref(),
        Some(event_id.as_str()),
        "the error handler got the wrong event"
    );
    assert!(
        seen.message.contains(FAILURE),
        "the error lost the listener's message: {}",
        seen.message
    );

    if queued {
        let emitted: Vec<String> = emitted.iter().map(ToString::to_string).collect();
        assert!(
            emitted.is_empty(),
            "with a queue store the emission ends once the event is enqueued, but it yielded {emitted:?}"
        );
    } else {
        assert_eq!(
            emitted.len(),
            1,
            "the emission yielded {emitted:?} for one failing listener"
        );
        match &emitted[0] {
            Error::Listener {
                listener_id,
                topic,
                source,
            } => {
                assert_eq!(
                    listener_id, FAILING_HANDLER,
                    "the emission's error names another listener"
                );
                assert_eq!(
                    topic, FAILING_TOPIC,
                    "the emission's error names another topic"
                );
                assert!(
                    source.to_string().contains(FAILURE),
                    "the emission's error lost the message: {source}"
                );
            }
            other => panic!("the emission yielded {other:?}, not Error::Listener"),
        }
    }

    if let Some(results) = all_results(&store, config).await {
        let mine: Vec<&StoredResult> = results.iter().filter(|r| r.event_id == event_id).collect();
        assert_eq!(
            mine.len(),
            1,
            "the store holds {mine:?} for one failed attempt"
        );
        let result = mine[0];
        assert!(
            !result.succeeded(),
            "a failed attempt was stored as a success"
        );
        assert_eq!(
            result.handler_id, FAILING_HANDLER,
            "the result names another listener"
        );
        assert_eq!(
            result.attempt, 1,
            "a first attempt was stored as attempt {}",
            result.attempt
        );
        let error = result.error.as_deref().unwrap_or_default();
        assert!(
            error.contains(FAILURE),
            "the stored error lost the listener's message: {error:?}"
        );
    }
    if let Some(dedup) = store.dedup() {
        let done = within(
            config,
            "handler_succeeded",
            dedup.handler_succeeded(&event_id, FAILING_HANDLER),
        )
        .await;
        assert!(
            !ok("handler_succeeded", done),
            "dedup counts a failed listener as done"
        );
    }
    assert_drained_and_close(bus, &store, config).await;
    Outcome::Passed
}
