//! The event type.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::{PROPERTY_EVENT_ID, Payload, Properties};
use crate::{Context, Error, Result};

/// An event: a concrete topic, a payload, shared properties, an aborted flag,
/// the emitter's [`Context`] and an optional client.
///
/// # Examples
///
/// ```
/// use soiree::Event;
///
/// let event = Event::new("user.created", serde_json::json!({ "email": "ada@example.com" }));
/// event.properties().set("name", "Ada Lovelace");
/// assert_eq!(event.topic(), "user.created");
/// assert_eq!(event.properties().get_str("name").as_deref(), Some("Ada Lovelace"));
/// ```
pub struct Event {
    topic: Arc<str>,
    payload: Payload,
    properties: Properties,
    aborted: AtomicBool,
    context: Context,
    client: Option<Arc<dyn Any + Send + Sync>>,
}

impl Event {
    /// An event with a payload that stores can serialize.
    pub fn new<T: Serialize + Send + Sync + 'static>(topic: impl AsRef<str>, payload: T) -> Self {
        Self::with_payload(topic, Payload::new(payload))
    }

    /// An event with any [`Payload`].
    pub fn with_payload(topic: impl AsRef<str>, payload: Payload) -> Self {
        Self::from_parts(Arc::from(topic.as_ref()), payload, Properties::new())
    }

    pub(crate) fn from_parts(topic: Arc<str>, payload: Payload, properties: Properties) -> Self {
        Self {
            topic,
            payload,
            properties,
            aborted: AtomicBool::new(false),
            context: Context::default(),
            client: None,
        }
    }

    /// The event's topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The payload.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// Replaces the payload.
    pub fn set_payload(&mut self, payload: Payload) {
        self.payload = payload;
    }

    /// The properties, seen by every listener of the emission.
    pub fn properties(&self) -> &Properties {
        &self.properties
    }

    /// Replaces the properties.
    pub fn set_properties(&mut self, properties: Properties) {
        self.properties = properties;
    }

    /// Reports whether a listener aborted the emission.
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// Sets the aborted flag: listeners after the current one do not run.
    pub fn set_aborted(&self, aborted: bool) {
        self.aborted.store(aborted, Ordering::Release);
    }

    /// The emitter's context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Replaces the context.
    pub fn set_context(&mut self, context: Context) {
        self.context = context;
    }

    /// Makes the caller's span the parent of listener spans, unless the
    /// event's context already names one.
    pub(crate) fn adopt_current_span(&mut self) {
        // Without any subscriber every span is disabled: skip the lookup.
        if self.context.span().is_none() && tracing::dispatcher::has_been_set() {
            self.context = std::mem::take(&mut self.context).with_span(tracing::Span::current());
        }
    }

    /// The client attached to this event, if it is a `T`.
    pub fn client<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.client.as_deref()?.downcast_ref()
    }

    /// Attaches a client (a database handle, say) for listeners to use; it
    /// takes precedence over the bus's client.
    pub fn set_client<T: Send + Sync + 'static>(&mut self, client: T) {
        self.client = Some(Arc::new(client));
    }

    pub(crate) fn client_any(&self) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.client.as_ref()
    }

    /// The event's id (the `soiree.event_id` property), if it has one: a
    /// string, or a number in its decimal form; an empty string is no id.
    pub fn id(&self) -> Option<String> {
        match self.properties.get(PROPERTY_EVENT_ID)? {
            serde_json::Value::String(id) if !id.is_empty() => Some(id),
            serde_json::Value::Number(id) => Some(id.to_string()),
            _ => None,
        }
    }
}

impl Clone for Event {
    fn clone(&self) -> Self {
        Self {
            topic: Arc::clone(&self.topic),
            payload: self.payload.clone(),
            properties: self.properties.clone(),
            aborted: AtomicBool::new(self.is_aborted()),
            context: self.context.clone(),
            client: self.client.clone(),
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("topic", &self.topic)
            .field("payload", &self.payload)
            .field("properties", &self.properties)
            .field("aborted", &self.is_aborted())
            .field("context", &self.context)
            .field("client", &self.client.is_some())
            .finish()
    }
}

/// The stable idempotency key of an event (its `soiree.event_id` property),
/// when present. The bus sets one on every event it emits.
///
/// # Examples
///
/// ```
/// use soiree::{Event, PROPERTY_EVENT_ID, event_id};
///
/// let event = Event::new("user.created", ());
/// assert_eq!(event_id(&event), None);
/// event.properties().set(PROPERTY_EVENT_ID, "evt-1");
/// assert_eq!(event_id(&event).as_deref(), Some("evt-1"));
/// ```
pub fn event_id(event: &Event) -> Option<String> {
    event.id()
}

/// What `emit` accepts: an [`Event`], a [`Payload`], or any serializable value
/// (which becomes the payload of a new event on the emitted topic).
pub trait IntoEvent {
    /// Builds the event to emit on `topic`.
    ///
    /// # Errors
    ///
    /// [`Error::EventTopicMismatch`] when an event's own topic is not `topic`.
    fn into_event(self, topic: &Arc<str>) -> Result<Event>;
}

impl IntoEvent for Event {
    fn into_event(mut self, topic: &Arc<str>) -> Result<Event> {
        if self.topic.trim() != &**topic {
            return Err(Error::EventTopicMismatch {
                emitted: topic.to_string(),
                event: self.topic.to_string(),
            });
        }
        self.topic = Arc::clone(topic);
        Ok(self)
    }
}

impl IntoEvent for Payload {
    fn into_event(self, topic: &Arc<str>) -> Result<Event> {
        Ok(Event::from_parts(
            Arc::clone(topic),
            self,
            Properties::new(),
        ))
    }
}

impl<T: Serialize + Send + Sync + 'static> IntoEvent for T {
    fn into_event(self, topic: &Arc<str>) -> Result<Event> {
        Payload::new(self).into_event(topic)
    }
}
