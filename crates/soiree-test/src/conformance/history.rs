//! Checks of saved events and their paged history.

use std::sync::Arc;

use serde_json::{Value, json};
use soiree::{EventStore, PROPERTY_EVENT_ID, StoredEvent};

use super::support::{ok, read_all, stored_event, unique_id, within};
use super::{Ability, Conformance, Outcome};

const NO_HISTORY: &str = Ability::History.missing();

/// Events saved with [`EventStore::save_event`] read back from
/// [`EventHistory::events`](soiree::EventHistory::events) with identical
/// topic, payload JSON and properties (`soiree.event_id` included), oldest
/// first.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn saved_events_read_back_identical(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(history) = store.history() else {
        return Outcome::Skipped(NO_HISTORY);
    };
    let rich = {
        let mut event = stored_event(
            "conformance.history.created",
            &unique_id("history"),
            json!({
                "string": "héllo wörld ✓ \"quoted\" \\ \n tab\t",
                "int": -42,
                "big": 9_007_199_254_740_993_u64,
                "float": 1.5,
                "bool": true,
                "null": null,
                "array": [1, "two", { "three": [3] }, []],
                "empty": {},
            }),
        );
        event
            .properties
            .insert("name".to_owned(), json!("Ada Lovelace"));
        event.properties.insert("count".to_owned(), json!(3));
        event
            .properties
            .insert("nested".to_owned(), json!({ "a": [true, null] }));
        event
    };
    let saved = vec![
        rich,
        stored_event(
            "conformance.history.null",
            &unique_id("history"),
            Value::Null,
        ),
        stored_event(
            "conformance.history.string",
            &unique_id("history"),
            json!("just a string"),
        ),
    ];
    for event in &saved {
        ok(
            "save_event",
            within(config, "save_event", store.save_event(event)).await,
        );
    }
    let read = read_all("history().events", 100, |cursor| async move {
        history.events(cursor.as_deref(), 100).await
    });
    let read = ours(&saved, within(config, "history().events", read).await);
    assert_eq!(
        read.len(),
        saved.len(),
        "history().events returned {} of the {} saved events",
        read.len(),
        saved.len()
    );
    for (read, saved) in read.iter().zip(&saved) {
        assert_eq!(
            read.properties.get(PROPERTY_EVENT_ID),
            saved.properties.get(PROPERTY_EVENT_ID),
            "history().events is not in the order the events were saved"
        );
        assert_eq!(read.topic, saved.topic, "a saved event's topic changed");
        assert_eq!(
            read.payload, saved.payload,
            "a saved event's payload JSON changed"
        );
        assert_eq!(
            read.properties, saved.properties,
            "a saved event's properties changed"
        );
        assert_eq!(read.id(), saved.id(), "a saved event's id changed");
    }
    Outcome::Passed
}

/// Paging through [`EventHistory::events`](soiree::EventHistory::events)
/// with any limit returns every saved event exactly once, in the order saved,
/// in pages of at most `limit` items, and ends.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn event_history_pages_cover_all_events(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(history) = store.history() else {
        return Outcome::Skipped(NO_HISTORY);
    };
    let saved: Vec<StoredEvent> = (0..7)
        .map(|n| {
            stored_event(
                "conformance.paging.item",
                &unique_id("paging"),
                json!({ "n": n }),
            )
        })
        .collect();
    for event in &saved {
        ok(
            "save_event",
            within(config, "save_event", store.save_event(event)).await,
        );
    }
    let everything = read_all("history().events", 1000, |cursor| async move {
        history.events(cursor.as_deref(), 1000).await
    });
    let everything = within(config, "history().events", everything).await;
    for limit in [1, 2, 3, 7, 8, 1000] {
        let paged = read_all("history().events", limit, |cursor| async move {
            history.events(cursor.as_deref(), limit).await
        });
        let paged = within(config, "history().events", paged).await;
        assert_eq!(
            paged, everything,
            "paging history().events {limit} at a time gave a different listing than one page"
        );
        assert_eq!(
            ours(&saved, paged),
            saved,
            "paging history().events {limit} at a time did not return each saved event once, in order"
        );
    }
    Outcome::Passed
}

/// The events of `listing` that are among `saved` (by id), in listing order.
fn ours(saved: &[StoredEvent], listing: Vec<StoredEvent>) -> Vec<StoredEvent> {
    listing
        .into_iter()
        .filter(|event| saved.iter().any(|mine| mine.id() == event.id()))
        .collect()
}
