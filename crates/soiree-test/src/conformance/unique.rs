//! Checks of unique keys at emit
//! ([`EventStore::append_unique`](soiree::EventStore::append_unique)): one
//! event per key within the window, atomically. Stores that do not
//! implement it yet are skipped, not failed.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use serde_json::json;
use soiree::{Appended, Error, Event, EventBus, EventStore};

use super::bus::Shared;
use super::support::{ok, stored_event, unique_id, within};
use super::{Conformance, Outcome};

const NO_UNIQUE: &str = super::Ability::UniqueKeys.missing();
const WINDOW: Duration = Duration::from_secs(3600);

/// A second append of a key within its window stores nothing and names
/// the first event; another key is appended; concurrent appends of one
/// new key store exactly one event.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn append_unique_keeps_one_event_per_key(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let key = unique_id("key");
    let first = stored_event("conformance.unique", &unique_id("unique"), json!(1));
    let appended = within(
        config,
        "append_unique",
        store.append_unique(&first, &key, WINDOW),
    )
    .await;
    match appended {
        Err(Error::Unsupported(_)) => return Outcome::Skipped(NO_UNIQUE),
        Err(err) => panic!("append_unique failed: {err}"),
        Ok(appended) => assert_eq!(appended, Appended::New, "a new key was not appended"),
    }
    let second = stored_event("conformance.unique", &unique_id("unique"), json!(2));
    let again = ok(
        "append_unique",
        within(
            config,
            "append_unique",
            store.append_unique(&second, &key, WINDOW),
        )
        .await,
    );
    assert_eq!(
        again,
        Appended::Existing(first.id().unwrap_or_default().to_owned()),
        "a key appended twice within its window was stored twice"
    );
    let other = stored_event("conformance.unique", &unique_id("unique"), json!(3));
    let other_key = unique_id("key");
    assert_eq!(
        ok(
            "append_unique",
            within(
                config,
                "append_unique",
                store.append_unique(&other, &other_key, WINDOW)
            )
            .await,
        ),
        Appended::New,
        "another key was refused"
    );

    let racing = unique_id("key");
    let events: Vec<_> = (0..8)
        .map(|n| stored_event("conformance.unique", &unique_id("race"), json!(n)))
        .collect();
    let answers = within(
        config,
        "concurrent append_unique",
        join_all(
            events
                .iter()
                .map(|e| store.append_unique(e, &racing, WINDOW)),
        ),
    )
    .await;
    let answers: Vec<Appended> = answers
        .into_iter()
        .map(|answer| ok("append_unique", answer))
        .collect();
    let new = answers.iter().filter(|a| **a == Appended::New).count();
    assert_eq!(new, 1, "concurrent appends of one key stored {new} events");
    Outcome::Passed
}

/// On a bus over the store, two emits of one unique key within its window
/// return the same event id and run the listener once.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn bus_emits_a_unique_key_once(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let bus = ok(
        "build",
        EventBus::builder().shared_store(Arc::clone(&store)).build(),
    );
    let ran: Shared<Option<String>> = Shared::new();
    let seen = ran.clone();
    ok(
        "on_named",
        bus.on_named("conformance-unique", "conformance.unique.bus", move |ctx| {
            let seen = seen.clone();
            async move {
                seen.push(ctx.event_id());
                Ok(())
            }
        }),
    );
    ok("start", bus.start());
    let key = unique_id("bus-key");
    let emit =
        || bus.emit_event(Event::new("conformance.unique.bus", 1).unique_key(key.clone(), WINDOW));
    let first = within(config, "the first emit", emit().persisted()).await;
    let first = match first {
        Err(Error::Unsupported(_)) => return Outcome::Skipped(NO_UNIQUE),
        other => ok("the first emit", other),
    };
    let second = ok(
        "the second emit",
        within(config, "the second emit", emit().persisted()).await,
    );
    assert_eq!(first, second, "a unique key's second emit is another event");
    within(config, "the bus to go idle", bus.wait_for_idle()).await;
    let runs = ran.take();
    assert_eq!(runs, [Some(first)], "a unique event ran other than once");
    let _ = within(config, "close", bus.close()).await;
    Outcome::Passed
}
