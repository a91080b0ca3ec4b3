//! The JSON envelope in which stores keep events.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Event, PROPERTY_EVENT_ID, Payload, Properties};
use crate::Result;

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
    pub fn from_event(event: &Event) -> Result<Self> {
        let stored = Self {
            topic: event.topic().to_owned(),
            payload: event.payload().to_json()?,
            properties: event.properties().to_map(),
        };
        crate::limits::check_envelope(&stored)?;
        Ok(stored)
    }

    /// The event id (`soiree.event_id`), if present as a string.
    pub fn id(&self) -> Option<&str> {
        self.properties.get(PROPERTY_EVENT_ID)?.as_str()
    }

    /// Turns the envelope back into an event whose payload is JSON, decoded
    /// into listeners' types on demand.
    pub fn into_event(self) -> Event {
        // `null` is how an event without payload was stored.
        let payload = match self.payload {
            Value::Null => Payload::empty(),
            json => Payload::from_json(json),
        };
        Event::from_parts(
            self.topic.into(),
            payload,
            Properties::from_map(self.properties),
        )
    }
}
