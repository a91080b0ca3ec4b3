//! The check that an event a store cannot serialize is rejected whole.

use std::sync::Arc;

use futures::StreamExt;
use serde_json::json;
use soiree::{Error, EventStore, Payload};

use super::bus::{Shared, all_events, all_results, assert_drained_and_close, bus_on, settle};
use super::support::{ok, within};
use super::{Conformance, Outcome};

const OPAQUE_TOPIC: &str = "conformance.serialization.opaque";
const JSON_TOPIC: &str = "conformance.serialization.json";
const HANDLER: &str = "conformance-serialization";

/// A value with no JSON form.
#[derive(Debug)]
struct NotJson(#[allow(dead_code)] std::time::Instant);

/// An event whose payload has no JSON form ([`Payload::opaque`]), emitted on
/// a bus with the store, yields [`Error::Serialization`] on its emission and
/// persists nothing: no stored event or result, an unchanged queue backlog,
/// and no listener run. The bus keeps working: a JSON event emitted next is
/// stored and handled.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn unserializable_payload_persists_nothing(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let (bus, handler_errors) = bus_on(&store);
    let calls: Shared<String> = Shared::new();
    let recorder = calls.clone();
    let registered = bus.on_named(HANDLER, "conformance.serialization.*", move |ctx| {
        let recorder = recorder.clone();
        async move {
            recorder.push(ctx.topic().to_owned());
            Ok(())
        }
    });
    ok("registering a listener", registered);
    ok("starting the bus", bus.start());
    let backlog = async || match store.queue() {
        Some(queue) => Some(ok(
            "backlog",
            within(config, "backlog", queue.backlog()).await,
        )),
        None => None,
    };
    let backlog_before = backlog().await;

    let emission = bus.emit(
        OPAQUE_TOPIC,
        Payload::opaque(NotJson(std::time::Instant::now())),
    );
    let emitted: Vec<Error> = within(config, "the emission to finish", emission.collect()).await;
    assert_eq!(
        emitted.len(),
        1,
        "emitting a payload with no JSON form yielded {emitted:?}, not one error"
    );
    assert!(
        matches!(emitted[0], Error::Serialization(_)),
        "emitting a payload with no JSON form yielded {:?}, not Error::Serialization",
        emitted[0]
    );
    assert_eq!(
        backlog().await,
        backlog_before,
        "a payload with no JSON form changed the queue's backlog"
    );

    let emission = bus.emit(JSON_TOPIC, json!({ "after": "opaque" }));
    let emitted: Vec<String> = within(
        config,
        "the emission to finish",
        emission.collect::<Vec<Error>>(),
    )
    .await
    .iter()
    .map(ToString::to_string)
    .collect();
    assert!(
        emitted.is_empty(),
        "a JSON event after an opaque one yielded {emitted:?}"
    );
    settle(&bus, config).await;

    assert_eq!(
        calls.take(),
        vec![JSON_TOPIC.to_owned()],
        "the listener should have run for the JSON event only"
    );
    let handler_errors = handler_errors.take();
    assert!(
        handler_errors.len() == 1 && handler_errors[0].serialization,
        "the error handler should have seen the one serialization error, but saw {handler_errors:?}"
    );
    if let Some(events) = all_events(&store, config).await {
        let topics: Vec<&str> = events.iter().map(|event| event.topic.as_str()).collect();
        assert!(
            !topics.contains(&OPAQUE_TOPIC),
            "an event whose payload has no JSON form was stored"
        );
        assert_eq!(
            topics.iter().filter(|topic| **topic == JSON_TOPIC).count(),
            1,
            "the JSON event emitted after the opaque one was not stored once"
        );
    }
    if let Some(results) = all_results(&store, config).await {
        assert!(
            results.iter().all(|result| result.topic != OPAQUE_TOPIC),
            "a result was stored for an event that could not be stored"
        );
    }
    assert_drained_and_close(bus, &store, config).await;
    Outcome::Passed
}
