//! What a listener receives.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::{ListenerEntry, ListenerId, ListenerJob};
use crate::{Context, Event, EventBus, Payload, Properties};

/// Everything a listener needs about the event it handles: the event, its
/// payload and properties, the emitter's [`Context`], the client, and which
/// listener and attempt this is.
///
/// # Examples
///
/// ```
/// use soiree::{EventBus, EventContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bus = EventBus::new();
/// bus.on("user.created", |ctx: EventContext| async move {
///     assert_eq!(ctx.topic(), "user.created");
///     assert_eq!(ctx.payload_as::<&str>(), Some(&"ada"));
///     assert_eq!(ctx.attempt(), 1);
///     ctx.properties().set("seen", true);
///     Ok(())
/// }).unwrap();
/// let errors: Vec<_> = futures::StreamExt::collect(bus.emit("user.created", "ada")).await;
/// assert!(errors.is_empty());
/// # }
/// ```
pub struct EventContext {
    job: Arc<dyn ListenerJob>,
    /// This listener's place in the job's route.
    index: usize,
    attempt: u32,
}

impl EventContext {
    /// `index` must be a position in the job's route.
    pub(crate) fn new(job: Arc<dyn ListenerJob>, index: usize, attempt: u32) -> Self {
        Self {
            job,
            index,
            attempt,
        }
    }

    fn listener(&self) -> &ListenerEntry {
        self.job.listener(self.index)
    }

    /// The emitter's request context.
    pub fn context(&self) -> &Context {
        self.event().context()
    }

    /// The event being handled.
    pub fn event(&self) -> &Event {
        self.job.event()
    }

    /// The event's payload.
    pub fn payload(&self) -> &Payload {
        self.event().payload()
    }

    /// The payload, when it is a `T` (no decoding: see
    /// [`unwrap_payload`](crate::unwrap_payload) for payloads from a store).
    pub fn payload_as<T: 'static>(&self) -> Option<&T> {
        self.payload().downcast_ref()
    }

    /// The properties shared by the emission's listeners.
    pub fn properties(&self) -> &Properties {
        self.event().properties()
    }

    /// A copy of the property at `key`.
    pub fn property(&self, key: &str) -> Option<Value> {
        self.properties().get(key)
    }

    /// The property at `key`, when it is a string.
    pub fn property_str(&self, key: &str) -> Option<String> {
        self.properties().get_str(key)
    }

    /// The client, when it is a `T`: the event's own, or else the bus's (the
    /// Go package's `ClientAs`).
    pub fn client<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.event()
            .client_any()
            .or(self.job.pipeline().client.as_ref())?
            .downcast_ref()
    }

    /// Stops the listeners after this one; their absence is not an error.
    pub fn abort(&self) {
        self.event().set_aborted(true);
    }

    /// The emitted topic.
    pub fn topic(&self) -> &str {
        self.event().topic()
    }

    /// The event id (`soiree.event_id`): the idempotency key across retries
    /// and replays.
    pub fn event_id(&self) -> Option<String> {
        self.event().id()
    }

    /// This listener's id.
    pub fn listener_id(&self) -> &ListenerId {
        &self.listener().id
    }

    /// The pattern this listener was registered on.
    pub fn pattern(&self) -> &str {
        &self.listener().pattern
    }

    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The queue store's receipt of the delivery being handled (what the
    /// bus passes to [`EventQueue::ack`](crate::EventQueue::ack)): `None`
    /// when the listeners run in place of an emit rather than from a
    /// store's queue. A store that fences its deliveries reads its lease
    /// and token from it, for work committed inside the listener.
    pub fn receipt(&self) -> Option<&str> {
        self.job.receipt()
    }

    /// Whether this listener is the last one of a queue's delivery still
    /// to run, with no error before it: if it succeeds, the bus then
    /// acknowledges the delivery (the event's other listeners for this
    /// consumer group have all succeeded, were skipped as done, or there
    /// are none). `false` when the listeners run in place of an emit, or
    /// when listeners after this one may still run or fail.
    ///
    /// A store that commits a listener's work in a transaction may then
    /// settle the delivery in that transaction too, so that a crash between
    /// the commit and the bus's acknowledgement delivers nothing again.
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::{EventBus, EventContext};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let bus = EventBus::new();
    /// bus.on("user.created", |ctx: EventContext| async move {
    ///     // Not a delivery from a store's queue.
    ///     assert!(!ctx.settles_delivery());
    ///     Ok(())
    /// }).unwrap();
    /// let errors: Vec<_> = futures::StreamExt::collect(bus.emit("user.created", "ada")).await;
    /// assert!(errors.is_empty());
    /// # }
    /// ```
    pub fn settles_delivery(&self) -> bool {
        self.job.settles_after(self.index)
    }

    /// Cancelled when the bus closes (a batch listener then stops
    /// gathering).
    pub(crate) fn shutdown(&self) -> &tokio_util::sync::CancellationToken {
        &self.job.pipeline().shutdown
    }

    pub(crate) fn listener_metrics(&self) -> &crate::metrics::ListenerMetrics {
        &self.job.pipeline().metrics
    }

    /// The bus that dispatched the event, to emit follow-up events or change
    /// listeners from inside a listener.
    pub fn bus(&self) -> EventBus {
        self.job.bus()
    }
}

impl fmt::Debug for EventContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventContext")
            .field("topic", &self.topic())
            .field("listener_id", &self.listener().id)
            .field("attempt", &self.attempt)
            .finish()
    }
}
