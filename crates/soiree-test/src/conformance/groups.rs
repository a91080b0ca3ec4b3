//! Consumer groups: each group of a store gets every event, and its
//! listeners' de-duplication is its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use soiree::{EventBus, EventStore};

use super::bus::{Shared, assert_drained_and_close, bus_on, close, settle};
use super::support::{assert_emitted_without_errors, ok};
use super::{Ability, Conformance, Outcome};

const GROUPS_TOPIC: &str = "conformance.groups.sent";
/// The listener name both groups use: the same name must not make one
/// group's success count for the other.
const GROUPS_HANDLER: &str = "conformance-groups";
const GROUPS_EVENTS: usize = 20;

/// Two consumer groups of one store, each with a listener of the same name,
/// each run that listener once for every event, and each empties its own
/// backlog.
///
/// `first` and `second` are two handles on one store (the same database,
/// key prefix or [`MemoryStore`](soiree::MemoryStore)) reading for two
/// different consumer groups. Unlike the checks of [`Check::ALL`](super::Check::ALL),
/// which take one fresh store, this check needs both, so a backend's tests
/// call it on their own.
///
/// # Panics
///
/// When the store does not keep that promise: typically, de-duplication
/// keyed by (listener, event) without the group, so that the group that
/// runs second skips every event while its backlog goes to zero.
pub async fn groups_each_run_every_event(
    first: Arc<dyn EventStore>,
    second: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    if first.queue().is_none() || second.queue().is_none() {
        return Outcome::Skipped(Ability::Queue.missing());
    }
    let producer = EventBus::builder()
        .shared_store(Arc::clone(&first))
        .consume(false)
        .build();
    let producer = ok("building a producer bus", producer);
    let emissions = (0..GROUPS_EVENTS).map(|n| producer.emit(GROUPS_TOPIC, json!({ "n": n })));
    assert_emitted_without_errors(config, "enqueueing from a producer bus", emissions).await;

    let mut seen_by_group = BTreeMap::new();
    for (group, store) in [("first", &first), ("second", &second)] {
        let (bus, handler_errors) = bus_on(store);
        let handled: Shared<Value> = Shared::new();
        let recorder = handled.clone();
        let registered = bus.on_named(GROUPS_HANDLER, GROUPS_TOPIC, move |ctx| {
            let recorder = recorder.clone();
            async move {
                recorder.push(ctx.payload().decode::<Value>()?);
                Ok(())
            }
        });
        ok("registering a listener", registered);
        ok("starting the bus", bus.start());
        settle(&bus, config).await;
        let handler_errors = handler_errors.take();
        assert!(
            handler_errors.is_empty(),
            "the error handler of the {group} group saw {handler_errors:?}"
        );
        let mut seen: Vec<u64> = handled
            .take()
            .iter()
            .map(|payload| {
                payload["n"].as_u64().unwrap_or_else(|| {
                    panic!("the {group} group got a payload other than the one emitted: {payload}")
                })
            })
            .collect();
        seen.sort_unstable();
        seen_by_group.insert(group, seen);
        assert_drained_and_close(bus, store, config).await;
    }
    let every: Vec<u64> = (0..GROUPS_EVENTS as u64).collect();
    for (group, seen) in &seen_by_group {
        assert_eq!(
            *seen,
            every,
            "the {group} group's listener {GROUPS_HANDLER:?} ran for {} of {GROUPS_EVENTS} events \
             (each group must run its listeners for every event, even when another group has a \
             listener of the same name)",
            seen.len()
        );
    }
    close(producer, config).await;
    Outcome::Passed
}
