//! The event bus.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::dispatch::{Job, Work};
use super::{BusCore, BusInner, Emission, EmissionState, EventBusBuilder, consumer, live};
use crate::listener::ListenerEntry;
use crate::topic::{validate_pattern, validate_topic};
use crate::{
    BoxError, Context, Error, EventContext, IntoEvent, Listener, ListenerBinding, ListenerId,
    Result,
};

/// An in-process event bus: listeners register on topic patterns, and each
/// emitted event runs its matching listeners, most specific pattern first, on
/// a bounded worker pool.
///
/// A bus is cheap to clone (clones share everything) and `Send + Sync`. With a
/// queue store ([`EventBusBuilder::store`]) emitting appends to the store and
/// the bus's consumers dispatch, which makes the bus an at-least-once pipeline
/// across processes.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use soiree::{Event, EventBus};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bus = EventBus::new();
/// bus.on("user.created", |ctx| async move {
///     let name = ctx.property_str("name").unwrap_or_default();
///     println!("welcome {name}");
///     Ok(())
/// }).unwrap();
///
/// let event = Event::new("user.created", serde_json::json!({ "email": "ada@example.com" }));
/// event.properties().set("name", "Ada Lovelace");
/// let errors: Vec<_> = bus.emit("user.created", event).collect().await;
/// assert!(errors.is_empty());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct EventBus {
    core: Arc<BusCore>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus with the default options: 10 workers, ULID ids, no store, no retries.
    pub fn new() -> Self {
        EventBusBuilder::default().build_validated()
    }

    /// Configures a bus.
    pub fn builder() -> EventBusBuilder {
        EventBusBuilder::default()
    }

    pub(crate) fn from_core(core: Arc<BusCore>) -> Self {
        Self { core }
    }

    fn inner(&self) -> &BusInner {
        self.core.context()
    }

    /// Registers `listener` on `pattern` with a generated id.
    ///
    /// Listeners of the same pattern run in registration order. A listener is
    /// an async closure or function of an [`EventContext`]; types that
    /// implement [`Listener`] themselves register with
    /// [`ListenerBinding::new`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTopicName`] for an invalid pattern;
    /// [`Error::DuplicateListener`] when the id is already registered on this
    /// bus; [`Error::Closed`] on a closed bus.
    pub fn on<F, Fut>(&self, pattern: &str, listener: F) -> Result<ListenerId>
    where
        F: Fn(EventContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let id = ListenerId::new(self.inner().next_id());
        self.insert(id, pattern, Arc::new(listener))
    }

    /// Registers `listener` on `pattern` with the stable id `name`.
    ///
    /// Stable ids let a store remember across restarts and processes which
    /// listeners already handled an event, so a redelivered event skips them.
    ///
    /// # Errors
    ///
    /// As [`EventBus::on`].
    pub fn on_named<F, Fut>(&self, name: &str, pattern: &str, listener: F) -> Result<ListenerId>
    where
        F: Fn(EventContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.insert(ListenerId::new(name), pattern, Arc::new(listener))
    }

    pub(crate) fn register_binding(&self, binding: &ListenerBinding) -> Result<ListenerId> {
        let entry = self.insert_binding(binding)?;
        consumer::start(&self.core);
        Ok(entry.id.clone())
    }

    fn insert_binding(&self, binding: &ListenerBinding) -> Result<Arc<ListenerEntry>> {
        let id = match &binding.name {
            Some(name) => ListenerId::new(name.as_str()),
            None => ListenerId::new(self.inner().next_id()),
        };
        self.insert_entry(id, &binding.pattern, Arc::clone(&binding.listener))
    }

    fn insert(
        &self,
        id: ListenerId,
        pattern: &str,
        listener: Arc<dyn Listener>,
    ) -> Result<ListenerId> {
        let entry = self.insert_entry(id, pattern, listener)?;
        consumer::start(&self.core);
        Ok(entry.id.clone())
    }

    /// Registers without starting the queue consumer.
    fn insert_entry(
        &self,
        id: ListenerId,
        pattern: &str,
        listener: Arc<dyn Listener>,
    ) -> Result<Arc<ListenerEntry>> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let pattern = validate_pattern(pattern)?;
        let entry = Arc::new(ListenerEntry::new(id, pattern, listener));
        self.inner()
            .index
            .insert(pattern, Arc::clone(&entry), |other| other.id == entry.id)
            .map_err(|_| Error::DuplicateListener(entry.id.to_string()))?;
        Ok(entry)
    }

    /// Registers every binding, or none: if one fails, those registered
    /// before it are removed again. A queue store's consumer starts only once
    /// all are registered, so no delivery sees some of them and not others.
    ///
    /// # Errors
    ///
    /// The first binding's error, as [`EventBus::on`].
    pub fn register_listeners(
        &self,
        bindings: impl IntoIterator<Item = ListenerBinding>,
    ) -> Result<Vec<ListenerId>> {
        let mut registered: Vec<Arc<ListenerEntry>> = Vec::new();
        for binding in bindings {
            match self.insert_binding(&binding) {
                Ok(entry) => registered.push(entry),
                Err(err) => {
                    for entry in &registered {
                        let _ = self
                            .inner()
                            .index
                            .remove(&entry.pattern, |other| std::ptr::eq(other, &**entry));
                        entry.mark_removed();
                    }
                    return Err(err);
                }
            }
        }
        if !registered.is_empty() {
            consumer::start(&self.core);
        }
        Ok(registered.iter().map(|entry| entry.id.clone()).collect())
    }

    /// Removes the listener `id` from `pattern`. Emissions already under way
    /// skip it from now on; a listener may remove itself while running.
    ///
    /// # Errors
    ///
    /// [`Error::TopicNotFound`] when no listener is registered on `pattern`,
    /// [`Error::ListenerNotFound`] when `id` is not one of them, and
    /// [`Error::InvalidTopicName`] for an invalid pattern.
    pub fn off(&self, pattern: &str, id: &ListenerId) -> Result<()> {
        let pattern = validate_pattern(pattern)?;
        match self.inner().index.remove(pattern, |entry| entry.id == *id) {
            Ok(entry) => {
                entry.mark_removed();
                Ok(())
            }
            Err(crate::topic::RemoveError::PatternNotFound) => {
                Err(Error::TopicNotFound(pattern.to_owned()))
            }
            Err(crate::topic::RemoveError::EntryNotFound) => {
                Err(Error::ListenerNotFound(id.to_string()))
            }
        }
    }

    /// Reports whether any listener would hear an event on `topic` (false for
    /// an invalid topic).
    pub fn interested_in(&self, topic: &str) -> bool {
        validate_topic(topic)
            .is_ok_and(|topic| !self.inner().index.route(topic).listeners.is_empty())
    }

    /// Every registered pattern with its listeners' ids in registration
    /// order, sorted by pattern.
    pub fn listeners(&self) -> Vec<(String, Vec<ListenerId>)> {
        let mut patterns: Vec<(String, Vec<ListenerId>)> = self
            .inner()
            .index
            .patterns()
            .into_iter()
            .map(|(pattern, entries)| {
                (
                    pattern.to_string(),
                    entries.iter().map(|e| e.id.clone()).collect(),
                )
            })
            .collect();
        patterns.sort();
        patterns
    }

    /// The bus's client, if it is a `T`.
    pub fn client<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.inner().client.as_deref()?.downcast_ref()
    }

    /// Emits an event on `topic` with the caller's tracing span as the parent
    /// of the listener spans. `event` is an [`Event`](crate::Event), a
    /// [`Payload`](crate::Payload), or any serializable value.
    ///
    /// Returns at once; the listeners run on the pool. The returned
    /// [`Emission`] streams their errors and ends when the last one finishes.
    ///
    /// With a queue store the emission instead ends once the event is durably
    /// enqueued, yielding [`Error::Store`] if it was not; the listeners run
    /// later in whichever process consumes it, and their errors reach that
    /// bus's error handler (or its log).
    /// Errors that stop the emission before dispatch come as its only item:
    /// [`Error::InvalidTopicName`], [`Error::EventTopicMismatch`],
    /// [`Error::Closed`], [`Error::NoRuntime`].
    pub fn emit(&self, topic: &str, event: impl IntoEvent) -> Emission {
        self.emit_inner(None, topic, event)
    }

    /// Emits with a request [`Context`]: its cancellation, deadline,
    /// extensions and span reach every listener.
    pub fn emit_with_context(
        &self,
        context: Context,
        topic: &str,
        event: impl IntoEvent,
    ) -> Emission {
        self.emit_inner(Some(context), topic, event)
    }

    fn emit_inner(&self, context: Option<Context>, topic: &str, event: impl IntoEvent) -> Emission {
        let inner = self.inner();
        if self.is_closed() {
            return Emission::failed(Error::Closed);
        }
        let topic = match validate_topic(topic) {
            Ok(topic) => topic,
            Err(err) => return Emission::failed(err),
        };
        let queued = inner.store.as_deref().is_some_and(|s| s.queue().is_some());
        // Looked up here, once: the route travels with the job, so the
        // worker touches no lock of the route cache.
        let route = inner.index.route(topic);
        let mut event = match event.into_event(&route.topic) {
            Ok(event) => event,
            Err(err) => return Emission::failed(err),
        };
        if route.listeners.is_empty() && inner.store.is_none() {
            return Emission::failed_with(None);
        }
        match context {
            Some(context) => event.set_context(context),
            None => event.adopt_current_span(),
        }
        event
            .properties()
            .ensure_event_id(inner.id_generator.as_deref());
        let work = if queued {
            Work::Enqueue
        } else {
            Work::Dispatch(route)
        };
        let state = Arc::new(EmissionState::new(event, work, true));
        match self.core.submit(Job(Arc::clone(&state))) {
            Ok(()) => Emission::running(state),
            Err((err, _)) => Emission::failed(err),
        }
    }

    /// Waits until every emission so far has finished; with a queue store
    /// that this bus consumes, also until the queue holds nothing
    /// unacknowledged (in a queue shared with busy producers elsewhere, that
    /// may take as long as they keep producing). From inside a listener it
    /// does not wait for the caller's own emission.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only observes the bus.
    pub async fn wait_for_idle(&self) {
        let inner = self.inner();
        loop {
            self.core.wait_for_idle().await;
            // From inside a listener the caller's own delivery is unacknowledged
            // until it returns: waiting for the backlog would wait for itself.
            let consuming = inner.consumer.started.load(Ordering::Acquire)
                && !self.is_closed()
                && !self.core.caller_is_inside();
            let Some(queue) = inner
                .store
                .as_deref()
                .and_then(|s| s.queue())
                .filter(|_| consuming)
            else {
                return;
            };
            match queue.backlog().await {
                Ok(0) if self.core.pending() == 0 => return,
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "cannot read the queue's backlog"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Closes the bus: new emissions yield [`Error::Closed`], the consumers
    /// stop dequeuing (entries in flight finish and are acknowledged; the rest
    /// stay queued for other consumers), and running emissions finish.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyClosed`] on the second call.
    ///
    /// # Cancel safety
    ///
    /// Cancelling the wait leaves the bus closed; its work still finishes.
    pub async fn close(&self) -> Result<()> {
        let inner = self.inner();
        if inner.closed.swap(true, Ordering::AcqRel) {
            return Err(Error::AlreadyClosed);
        }
        // Stop taking deliveries before closing the pool, so that no delivery
        // already taken is refused a worker.
        inner.consumer.shutdown.cancel();
        let consumer = inner.consumer.consumer_task().take();
        if let Some(consumer) = consumer {
            let _ = consumer.await;
        }
        self.core.close();
        self.core.wait_for_idle().await;
        // The acknowledger flushes once every delivery job is gone; a listener
        // closing its own bus is one of them, so it does not wait for that.
        inner.consumer.tasks.close();
        if !self.core.caller_is_inside() {
            inner.consumer.tasks.wait().await;
        }
        live::unregister(inner.live_key);
        Ok(())
    }

    /// Reports whether [`EventBus::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner().closed.load(Ordering::Acquire)
    }

    /// The most emissions dispatched at once.
    pub fn workers(&self) -> usize {
        self.core.workers()
    }

    /// Changes the number of workers while the bus runs.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for zero workers.
    pub fn resize(&self, workers: usize) -> Result<()> {
        self.core.resize(workers)
    }
}
