//! The event type.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{PROPERTY_EVENT_ID, Payload, Properties};
use crate::schedule::EventOptions;
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
    /// A due time and a unique key, when set: boxed, so that an event
    /// without them pays one pointer and one branch.
    options: Option<Box<EventOptions>>,
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
            options: None,
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

    /// Delays the event: it is delivered at `when`, never before (see
    /// [`EventBus::emit_at`](crate::EventBus::emit_at) for where each bus
    /// and store holds it meanwhile). A time already past delivers at
    /// once. Stores keep it in the property
    /// [`PROPERTY_DUE_AT`](crate::PROPERTY_DUE_AT).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use soiree::Event;
    ///
    /// let when = SystemTime::now() + Duration::from_secs(3600);
    /// let event = Event::new("invoice.remind", 42).deliver_at(when);
    /// assert_eq!(event.due_at(), Some(when));
    /// ```
    #[must_use]
    pub fn deliver_at(mut self, when: SystemTime) -> Self {
        self.set_due_at(Some(when));
        self
    }

    /// Delays the event by `delay` from now (on the bus's clock, which a
    /// paused tokio clock drives in tests): [`Event::deliver_at`].
    #[must_use]
    pub fn deliver_after(self, delay: Duration) -> Self {
        let when = crate::schedule::clock::now()
            .checked_add(delay)
            .unwrap_or_else(|| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX)));
        self.deliver_at(when)
    }

    /// Sets or clears the due time ([`Event::deliver_at`]).
    pub fn set_due_at(&mut self, when: Option<SystemTime>) {
        self.options_mut(|options| options.due_at = when);
    }

    /// When the event is to be delivered, if it was delayed.
    pub fn due_at(&self) -> Option<SystemTime> {
        self.options.as_ref()?.due_at
    }

    /// Makes the emit of this event unique for `window`: a second emit of
    /// an event with the same `key` within `window` of the first one's
    /// stores nothing, runs no listener, and its
    /// [`Emission::persisted`](crate::Emission::persisted) returns the
    /// first event's id. Needs a store that implements
    /// [`EventStore::append_unique`](crate::EventStore::append_unique)
    /// (the [`MemoryStore`](crate::MemoryStore) does); elsewhere the emit
    /// fails with [`Error::Unsupported`] rather than store a duplicate.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use soiree::{Event, EventBus, MemoryStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
    /// let bus = EventBus::builder().store(MemoryStore::new()).build()?;
    /// bus.on("welcome.send", |_ctx| async { Ok(()) })?;
    /// let once = || Event::new("welcome.send", "ada").unique_key("welcome:ada", Duration::from_secs(3600));
    /// let first = bus.emit_event(once()).persisted().await?;
    /// let second = bus.emit_event(once()).persisted().await?;
    /// assert_eq!(first, second, "the second emit is the first event");
    /// bus.close().await
    /// # }
    /// ```
    #[must_use]
    pub fn unique_key(mut self, key: impl Into<String>, window: Duration) -> Self {
        let key = key.into();
        self.options_mut(|options| options.unique = Some((key, window)));
        self
    }

    /// The unique key and its window, if set ([`Event::unique_key`]).
    pub fn unique_key_and_window(&self) -> Option<(&str, Duration)> {
        let (key, window) = self.options.as_ref()?.unique.as_ref()?;
        Some((key.as_str(), *window))
    }

    pub(crate) fn has_options(&self) -> bool {
        self.options.is_some()
    }

    fn options_mut(&mut self, change: impl FnOnce(&mut EventOptions)) {
        let mut options = self.options.take().unwrap_or_default();
        change(&mut options);
        self.options = (!options.is_empty()).then_some(options);
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
            options: self.options.clone(),
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
            .field("due_at", &self.due_at())
            .field("unique_key", &self.unique_key_and_window())
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
