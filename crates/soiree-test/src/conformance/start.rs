//! Starting a consuming bus: listeners registered one by one, with awaits
//! between them, all handle a backlog that waited in the store.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use soiree::{EventBus, EventStore};

use super::bus::{Shared, assert_drained_and_close, bus_on, settle};
use super::support::{assert_emitted_without_errors, ok, within};
use super::{Ability, Conformance, Outcome};

const START_TOPIC: &str = "conformance.start.backlog";
/// The events waiting in the store before the consuming bus exists.
const BACKLOG: usize = 50;
/// Named listeners, registered in this order.
const LISTENERS: [&str; 3] = [
    "conformance-start-audit",
    "conformance-start-mailer",
    "conformance-start-ledger",
];
/// The await between two registrations: an application setting up each
/// listener's resources (a connection, a cache) awaits as long or longer.
const SETUP: Duration = Duration::from_millis(50);

/// A bus over a queue store whose backlog is already there takes nothing
/// before [`EventBus::start`]: three named listeners registered with an
/// await between them each handle every one of the backlog's events, once,
/// and the queue is empty afterwards.
///
/// # Panics
///
/// When a listener missed events or handled one twice, when the bus took a
/// delivery before it was started, or when a store call fails or takes longer
/// than [`Conformance::timeout`].
pub async fn listeners_registered_before_start_each_handle_the_backlog(
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
    let emissions = (0..BACKLOG).map(|n| producer.emit(START_TOPIC, json!({ "n": n })));
    assert_emitted_without_errors(config, "enqueueing the backlog", emissions).await;
    ok(
        "closing the producer",
        within(config, "the producer to close", producer.close()).await,
    );

    let (bus, handler_errors) = bus_on(&store);
    let mut handled: Vec<Shared<String>> = Vec::new();
    for name in LISTENERS {
        let recorder = Shared::new();
        handled.push(recorder.clone());
        let registered = bus.on_named(name, START_TOPIC, move |ctx| {
            recorder.push(ctx.event_id().unwrap_or_default());
            async { Ok(()) }
        });
        ok("registering a listener", registered);
        tokio::time::sleep(SETUP).await;
    }
    let backlog = ok("backlog", within(config, "backlog", queue.backlog()).await);
    assert_eq!(
        backlog, BACKLOG as u64,
        "the backlog is {backlog} of {BACKLOG} before start(): the bus took deliveries before it was started"
    );
    for (name, handled) in LISTENERS.iter().zip(&handled) {
        let early = handled.take();
        assert!(
            early.is_empty(),
            "listener {name} ran {} times before start()",
            early.len()
        );
    }

    ok("starting the bus", bus.start());
    settle(&bus, config).await;
    for (name, handled) in LISTENERS.iter().zip(&handled) {
        let ids = handled.take();
        let distinct: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(
            (ids.len(), distinct.len()),
            (BACKLOG, BACKLOG),
            "listener {name} ran {} times on {} distinct events of a backlog of {BACKLOG}",
            ids.len(),
            distinct.len()
        );
    }
    let handler_errors = handler_errors.take();
    assert!(
        handler_errors.is_empty(),
        "the error handler saw errors from listeners that succeed: {handler_errors:?}"
    );
    assert_drained_and_close(bus, &store, config).await;
    Outcome::Passed
}
