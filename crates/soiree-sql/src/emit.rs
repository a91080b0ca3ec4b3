//! Turning what `emit_in` is given into rows.

use std::sync::Arc;

use soiree::{IntoEvent, PROPERTY_EVENT_ID, StoredEvent};

use crate::backend::NewEvent;
use crate::topic::validate_topic;
use crate::{Error, Result};

/// An event ready to be written in the caller's transaction.
pub(crate) struct Prepared {
    /// Its row.
    pub(crate) row: NewEvent,
    /// Its id (`soiree.event_id`).
    pub(crate) id: String,
    /// Its due time (Unix ms) when later than now: it waits in
    /// `soiree_scheduled`, not in the log.
    pub(crate) due_ms: Option<i64>,
}

/// Builds the stored form of an event emitted on `topic`, giving it an
/// event id (a ULID) when it has none.
pub(crate) fn prepare(topic: &str, event: impl IntoEvent) -> Result<Prepared> {
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
    // Due already: written into the log, as the bus does.
    let due_ms = crate::scheduled::due_ms(&stored)?.filter(|due| *due > crate::scheduled::now_ms());
    Ok(Prepared {
        row: NewEvent::from_stored(&stored)?,
        id,
        due_ms,
    })
}

/// [`prepare`] for each `(topic, event)`, in order.
pub(crate) fn prepare_all(
    events: impl IntoIterator<Item = (impl AsRef<str>, impl IntoEvent)>,
) -> Result<Vec<Prepared>> {
    events
        .into_iter()
        .map(|(topic, event)| prepare(topic.as_ref(), event))
        .collect()
}

/// [`prepare_all`] for a statement that writes into the log only (a data
/// layer's own, see [`outbox`](crate::outbox)): the rows and the ids; a
/// delayed event is refused, as the statement would deliver it at once.
pub(crate) fn prepare_for_log(
    events: impl IntoIterator<Item = (impl AsRef<str>, impl IntoEvent)>,
) -> Result<(Vec<NewEvent>, Vec<String>)> {
    let mut rows = Vec::new();
    let mut ids = Vec::new();
    for prepared in prepare_all(events)? {
        if prepared.due_ms.is_some() {
            return Err(Error::Event(soiree::Error::Unsupported(
                "a delayed event (deliver_at) cannot be staged by an outbox statement: emit it with emit_in, or on the bus (emit_at)".into(),
            )));
        }
        rows.push(prepared.row);
        ids.push(prepared.id);
    }
    Ok((rows, ids))
}
