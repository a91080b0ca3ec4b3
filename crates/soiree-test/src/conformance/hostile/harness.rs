//! Emitting a hostile event between two ordinary ones, and checking what
//! became of all three.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Map, Value, json};
use soiree::{Error, Event, EventBus, EventStore, PROPERTY_EVENT_ID, Payload, StoredEvent};
use tokio::time::Instant;

use super::super::bus::{Shared, bus_on, close, settle};
use super::super::support::{ok, unique_id, within};
use super::super::{Conformance, Outcome};

/// The topic of the ordinary events emitted around each hostile one.
const NEIGHBOUR_TOPIC: &str = "hostile.neighbour";
/// The listener that records every delivery.
const RECORDER: &str = "hostile-recorder";

/// What a hostile event must become.
#[derive(Clone, Copy)]
pub(super) enum Expect {
    /// Stored and delivered intact (topic, payload, properties, event id).
    Delivered,
    /// Refused at emit with exactly one error, of the kind named.
    Refused(Refusal),
}

/// The kinds of typed refusal.
#[derive(Clone, Copy, Debug)]
pub(super) enum Refusal {
    /// [`Error::LimitExceeded`] with this `what`.
    Limit(&'static str),
    /// [`Error::InvalidTopicName`].
    Topic,
    /// [`Error::InvalidEventId`].
    EventId,
    /// [`Error::Serialization`]: a value JSON cannot hold.
    Serialization,
}

impl Refusal {
    fn matches(self, err: &Error) -> bool {
        match (self, err) {
            (Self::Limit(expected), Error::LimitExceeded { what, .. }) => *what == expected,
            (Self::Topic, Error::InvalidTopicName { .. })
            | (Self::EventId, Error::InvalidEventId { .. })
            | (Self::Serialization, Error::Serialization(_)) => true,
            _ => false,
        }
    }
}

/// One hostile event: what to emit and what it must become.
pub(super) struct Case {
    /// Names the case in failure messages.
    pub(super) label: &'static str,
    pub(super) topic: String,
    pub(super) payload: Payload,
    /// The payload's JSON as it must be delivered.
    pub(super) json: Value,
    /// Properties besides the event id.
    pub(super) properties: Map<String, Value>,
    /// The event id; a unique one when `None`.
    pub(super) event_id: Option<String>,
    pub(super) expect: Expect,
}

impl Case {
    /// A case whose payload is JSON.
    pub(super) fn json(label: &'static str, payload: Value, expect: Expect) -> Self {
        Self {
            label,
            topic: "hostile.event".to_owned(),
            payload: Payload::from_json(payload.clone()),
            json: payload,
            properties: Map::new(),
            event_id: None,
            expect,
        }
    }

    /// A case whose payload is any value (refused ones need no JSON form
    /// of their own).
    pub(super) fn value(label: &'static str, payload: Payload, expect: Expect) -> Self {
        Self {
            json: Value::Null,
            payload,
            ..Self::json(label, Value::Null, expect)
        }
    }

    pub(super) fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    pub(super) fn event_id(mut self, id: impl Into<String>) -> Self {
        self.event_id = Some(id.into());
        self
    }

    pub(super) fn property(mut self, key: impl Into<String>, value: Value) -> Self {
        self.properties.insert(key.into(), value);
        self
    }

    pub(super) fn empty_payload(mut self) -> Self {
        self.payload = Payload::empty();
        self.json = Value::Null;
        self
    }
}

/// What the recording listener saw of one delivery.
#[derive(Debug, Clone)]
struct Seen {
    topic: String,
    payload: Value,
    properties: Map<String, Value>,
}

/// Emits each case between two ordinary events on a bus over `store`, then
/// checks that every accepted case and every neighbour was delivered intact
/// with its event id, that every refused case was refused loudly with its
/// typed error and never delivered, and that the store's history (if any)
/// still reads.
///
/// # Panics
///
/// When the store breaks one of those promises; the message names the case.
pub(super) async fn run_cases(
    store: Arc<dyn EventStore>,
    config: &Conformance,
    cases: Vec<Case>,
) -> Outcome {
    let (bus, _handled) = bus_on(&store);
    let seen: Shared<(String, Seen)> = Shared::new();
    let recorder = seen.clone();
    let registered = bus.on_named(RECORDER, "**", move |ctx| {
        let recorder = recorder.clone();
        async move {
            let id = ctx.event_id().unwrap_or_default();
            let event = ctx.event();
            recorder.push((
                id,
                Seen {
                    topic: event.topic().to_owned(),
                    payload: event.payload().to_json()?,
                    properties: event.properties().to_map(),
                },
            ));
            Ok(())
        }
    });
    ok("registering the recording listener", registered);
    ok("starting the bus", bus.start());

    // Every event expected, by id: the cases accepted and the neighbours.
    let mut expected: BTreeMap<String, (&'static str, Seen)> = BTreeMap::new();
    let mut refused: Vec<(&'static str, String)> = Vec::new();
    for case in cases {
        let before = emit_neighbour(&bus, config, case.label, "before").await;
        expected.insert(before.0, (case.label, before.1));
        let id = case
            .event_id
            .clone()
            .unwrap_or_else(|| unique_id("hostile"));
        let errors = emit_case(&bus, config, &case, &id).await;
        match case.expect {
            Expect::Delivered => {
                assert!(
                    errors.is_empty(),
                    "hostile case {:?} must be stored and delivered, but emit yielded {errors:?}",
                    case.label
                );
                let mut properties = case.properties.clone();
                properties.insert(PROPERTY_EVENT_ID.to_owned(), Value::from(id.as_str()));
                let want = Seen {
                    topic: case.topic.trim().to_owned(),
                    payload: case.json.clone(),
                    properties,
                };
                expected.insert(id, (case.label, want));
            }
            Expect::Refused(refusal) => {
                assert!(
                    errors.len() == 1 && refusal.matches(&errors[0]),
                    "hostile case {:?} must be refused at emit with one {refusal:?} error, got {errors:?}",
                    case.label
                );
                refused.push((case.label, id));
            }
        }
        let after = emit_neighbour(&bus, config, case.label, "after").await;
        expected.insert(after.0, (case.label, after.1));
    }

    let delivered = wait_for(&bus, config, &seen, &expected).await;
    for (id, (label, want)) in &expected {
        let got = &delivered[id];
        assert_eq!(
            got.topic, want.topic,
            "case {label:?}: event {id:?} was delivered on another topic"
        );
        assert!(
            got.payload == want.payload,
            "case {label:?}: event {id:?} was delivered with another payload"
        );
        for (key, value) in &want.properties {
            assert!(
                got.properties.get(key) == Some(value),
                "case {label:?}: event {id:?} lost or changed its property {key:?}"
            );
        }
    }
    for (label, id) in &refused {
        assert!(
            !delivered.contains_key(id),
            "case {label:?}: the refused event {id:?} was delivered"
        );
    }
    if let Some(history) = store.history() {
        // The page holding a hostile row must read like any other.
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let page = ok(
                "history().events with hostile rows",
                within(
                    config,
                    "history().events",
                    history.events(cursor.as_deref(), 100),
                )
                .await,
            );
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    close(bus, config).await;
    Outcome::Passed
}

async fn emit_neighbour(
    bus: &EventBus,
    config: &Conformance,
    label: &'static str,
    side: &'static str,
) -> (String, Seen) {
    let id = unique_id("neighbour");
    let payload = json!({ "neighbour": side, "of": label });
    let event = Event::new(NEIGHBOUR_TOPIC, payload.clone());
    event.properties().set(PROPERTY_EVENT_ID, id.as_str());
    let errors: Vec<Error> = within(
        config,
        "a neighbour's emission",
        bus.emit(NEIGHBOUR_TOPIC, event).collect(),
    )
    .await;
    assert!(
        errors.is_empty(),
        "the ordinary event {side} case {label:?} yielded errors: {errors:?}"
    );
    let mut properties = Map::new();
    properties.insert(PROPERTY_EVENT_ID.to_owned(), Value::from(id.as_str()));
    (
        id,
        Seen {
            topic: NEIGHBOUR_TOPIC.to_owned(),
            payload,
            properties,
        },
    )
}

async fn emit_case(bus: &EventBus, config: &Conformance, case: &Case, id: &str) -> Vec<Error> {
    let event = Event::with_payload(&case.topic, case.payload.clone());
    for (key, value) in &case.properties {
        event.properties().set(key.as_str(), value.clone());
    }
    event.properties().set(PROPERTY_EVENT_ID, id);
    within(
        config,
        "a hostile emission",
        bus.emit(&case.topic, event).collect(),
    )
    .await
}

/// Waits (bounded by the suite's timeout) until every expected event was
/// delivered, and returns the deliveries by id; the first of several
/// deliveries of an event is kept.
async fn wait_for(
    bus: &EventBus,
    config: &Conformance,
    seen: &Shared<(String, Seen)>,
    expected: &BTreeMap<String, (&'static str, Seen)>,
) -> BTreeMap<String, Seen> {
    let deadline = Instant::now() + config.timeout;
    let mut delivered: BTreeMap<String, Seen> = BTreeMap::new();
    loop {
        settle(bus, config).await;
        for (id, got) in seen.take() {
            delivered.entry(id).or_insert(got);
        }
        let missing: Vec<(&str, &str)> = expected
            .iter()
            .filter(|(id, _)| !delivered.contains_key(*id))
            .map(|(id, (label, _))| (id.as_str(), *label))
            .collect();
        if missing.is_empty() {
            return delivered;
        }
        assert!(
            Instant::now() < deadline,
            "events were not delivered within {:?} (id, case): {missing:?}",
            config.timeout
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls the store's own entry point (its queue's `enqueue`, else
/// `save_event`) with an event past a limit, expecting the typed refusal.
pub(super) async fn assert_store_refuses(
    store: &Arc<dyn EventStore>,
    config: &Conformance,
    label: &'static str,
    event: StoredEvent,
    refusal: Refusal,
) {
    let result = match store.queue() {
        Some(queue) => within(config, "enqueue", queue.enqueue(&event)).await,
        None => within(config, "save_event", store.save_event(&event)).await,
    };
    match result {
        Err(err) if refusal.matches(&err) => {}
        other => panic!(
            "case {label:?}: the store must refuse the event itself with a {refusal:?} error, got {other:?}"
        ),
    }
}
