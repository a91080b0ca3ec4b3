//! Turning what `emit_in` is given into rows.

use std::sync::Arc;

use soiree::{IntoEvent, PROPERTY_EVENT_ID, StoredEvent};

use crate::backend::NewEvent;
use crate::topic::validate_topic;
use crate::{Error, Result};

/// Builds the stored form of an event emitted on `topic`, giving it an
/// event id (a ULID) when it has none. Returns the row and the id.
pub(crate) fn prepare(topic: &str, event: impl IntoEvent) -> Result<(NewEvent, String)> {
    let topic: Arc<str> = Arc::from(validate_topic(topic)?);
    let event = event.into_event(&topic).map_err(Error::Event)?;
    let id = match event.id() {
        Some(id) => id,
        None => {
            let id = ulid::Ulid::generate().to_string();
            event.properties().set(PROPERTY_EVENT_ID, id.as_str());
            id
        }
    };
    let stored = StoredEvent::from_event(&event).map_err(Error::Event)?;
    if stored.properties.contains_key(soiree::PROPERTY_DUE_AT) {
        // Written into the log by the caller's transaction, it would be
        // delivered at once: refused rather than early.
        return Err(Error::Event(soiree::Error::Unsupported(
            "a delayed event (deliver_at) cannot be emitted in a transaction: emit it on the bus (emit_at)".into(),
        )));
    }
    Ok((NewEvent::from_stored(&stored)?, id))
}

/// [`prepare`] for each `(topic, event)`, in order: the rows and the ids.
pub(crate) fn prepare_all(
    events: impl IntoIterator<Item = (impl AsRef<str>, impl IntoEvent)>,
) -> Result<(Vec<NewEvent>, Vec<String>)> {
    let mut rows = Vec::new();
    let mut ids = Vec::new();
    for (topic, event) in events {
        let (row, id) = prepare(topic.as_ref(), event)?;
        rows.push(row);
        ids.push(id);
    }
    Ok((rows, ids))
}
