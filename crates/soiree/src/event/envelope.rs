//! The JSON envelope in which stores keep events.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Event, PROPERTY_EVENT_ID, Payload, Properties};
use crate::Result;
use crate::schedule::{PROPERTY_DUE_AT, format_due, parse_due};

/// An event as stores keep it: `{topic, payload, properties}`, the same JSON
/// shape the Go package writes, so tooling can read events written by either.
///
/// # Examples
///
/// ```
/// use soiree::{Event, StoredEvent, PROPERTY_EVENT_ID};
///
/// let event = Event::new("user.created", serde_json::json!({ "id": 1 }));
/// event.properties().set(PROPERTY_EVENT_ID, "evt-1");
/// let stored = StoredEvent::from_event(&event).unwrap();
/// assert_eq!(stored.id(), Some("evt-1"));
/// let json = serde_json::to_string(&stored).unwrap();
/// let back: StoredEvent = serde_json::from_str(&json).unwrap();
/// assert_eq!(back.into_event().topic(), "user.created");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The event's topic.
    pub topic: String,
    /// The payload's JSON form.
    #[serde(default)]
    pub payload: Value,
    /// The event's properties, including `soiree.event_id`.
    #[serde(default)]
    pub properties: Map<String, Value>,
}

impl StoredEvent {
    /// Serializes an event for a store.
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`](crate::Error::Serialization) when the payload
    /// has no JSON form, including a payload holding a non-finite float (NaN,
    /// ±infinity), which is rejected rather than stored as `null`; nothing
    /// has been written anywhere at that point.
    /// [`Error::LimitExceeded`](crate::Error::LimitExceeded) (and the other
    /// errors of [`limits::check_envelope`](crate::limits::check_envelope))
    /// when the payload nests deeper than
    /// [`MAX_JSON_DEPTH`](crate::limits::MAX_JSON_DEPTH), checked while its
    /// JSON is made, or the event id or a property key is too long. Sizes
    /// are checked by the store, on the bytes it writes.
    ///
    /// A delayed event's due time ([`Event::due_at`]) is written to the
    /// property [`PROPERTY_DUE_AT`](crate::PROPERTY_DUE_AT).
    pub fn from_event(event: &Event) -> Result<Self> {
        let mut properties = event.properties().to_map();
        if event.has_options()
            && let Some(due) = event.due_at()
        {
            properties.insert(PROPERTY_DUE_AT.to_owned(), Value::String(format_due(due)?));
        }
        let stored = Self {
            topic: event.topic().to_owned(),
            payload: event.payload().to_json()?,
            properties,
        };
        crate::limits::check_envelope(&stored)?;
        Ok(stored)
    }

    /// The event id (`soiree.event_id`), if present as a string.
    pub fn id(&self) -> Option<&str> {
        self.properties.get(PROPERTY_EVENT_ID)?.as_str()
    }

    /// The due time of a delayed event (the property
    /// [`PROPERTY_DUE_AT`](crate::PROPERTY_DUE_AT)), `None` for an event to
    /// deliver at once. What a store that schedules reads.
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`](crate::Error::Serialization) when the
    /// property is not an RFC 3339 time: a store refuses such an event
    /// rather than guess when to deliver it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use soiree::{Event, StoredEvent, PROPERTY_DUE_AT};
    ///
    /// let when = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_635_800_250);
    /// let stored = StoredEvent::from_event(&Event::new("invoice.remind", 42).deliver_at(when)).unwrap();
    /// assert_eq!(stored.properties[PROPERTY_DUE_AT], "2026-12-07T09:30:00.25Z");
    /// assert_eq!(stored.due_at().unwrap(), Some(when));
    /// assert_eq!(stored.into_event().due_at(), Some(when));
    /// ```
    pub fn due_at(&self) -> Result<Option<std::time::SystemTime>> {
        self.properties
            .get(PROPERTY_DUE_AT)
            .map(parse_due)
            .transpose()
    }

    /// Turns the envelope back into an event whose payload is JSON, decoded
    /// into listeners' types on demand. A due time moves from the
    /// properties to [`Event::due_at`]; one that does not parse (stores
    /// refuse those, so only a hostile row holds one) stays a property and
    /// the event has no due time.
    pub fn into_event(mut self) -> Event {
        let due = match self.properties.get(PROPERTY_DUE_AT).map(parse_due) {
            Some(Ok(due)) => {
                self.properties.remove(PROPERTY_DUE_AT);
                Some(due)
            }
            _ => None,
        };
        // `null` is how an event without payload was stored.
        let payload = match self.payload {
            Value::Null => Payload::empty(),
            json => Payload::from_json(json),
        };
        let mut event = Event::from_parts(
            self.topic.into(),
            payload,
            Properties::from_map(self.properties),
        );
        if due.is_some() {
            event.set_due_at(due);
        }
        event
    }
}
