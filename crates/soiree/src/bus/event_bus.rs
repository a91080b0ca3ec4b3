//! The event bus.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::dispatch::{Dispatcher, Work, show_handler};
use super::persist::{NotAccepted, persist_inline};
use super::{BusInner, Emission, EmissionState, EventBusBuilder, consumer, live};
use crate::listener::{Limiter, ListenerEntry};
use crate::pool::{Queued, Rejected, inside_job};
use crate::topic::{validate_pattern, validate_topic};
use crate::{
    BoxError, Context, Error, EventContext, IntoEvent, Listener, ListenerBinding, ListenerId,
    ListenerLimits, Result,
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
/// # Starting a bus with a queue store
///
/// A bus with a queue store (Redis, SQL, [`MemoryStore::queue`](crate::MemoryStore::queue))
/// delivers nothing until [`EventBus::start`]: register every listener, then
/// start. A delivery runs the listeners registered at that moment and is then
/// settled, so starting before the last listener is registered would
/// acknowledge a backlog that listener never saw. Forgetting to start is
/// loud: the first event enqueued on an unstarted bus logs a warning. A bus
/// without a store, or with a store that has no queue, dispatches each
/// emission directly and needs no start.
///
/// ```
/// use soiree::{EventBus, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
/// let bus = EventBus::builder().store(MemoryStore::queue()).build()?;
/// bus.on_named("send-receipt", "order.paid", |_ctx| async { Ok(()) })?;
/// bus.start()?; // after the last listener
/// # bus.close().await
/// # }
/// ```
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
#[derive(Debug)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

impl Clone for EventBus {
    fn clone(&self) -> Self {
        Self::from_inner(Arc::clone(&self.inner))
    }
}

impl Drop for EventBus {
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.last_handle_dropped();
        }
    }
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

    /// A handle to the bus; the bus counts its handles so that dropping the
    /// last one is noticed.
    pub(crate) fn from_inner(inner: Arc<BusInner>) -> Self {
        inner.handles.fetch_add(1, Ordering::AcqRel);
        Self { inner }
    }

    pub(super) fn inner(&self) -> &Arc<BusInner> {
        &self.inner
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
        Ok(entry.id.clone())
    }

    fn insert_binding(&self, binding: &ListenerBinding) -> Result<Arc<ListenerEntry>> {
        let id = match &binding.name {
            Some(name) => ListenerId::new(name.as_str()),
            None => ListenerId::new(self.inner().next_id()),
        };
        self.insert_entry(
            id,
            &binding.pattern,
            Arc::clone(&binding.listener),
            &binding.limits,
            // Only a stable name is the same in every process.
            binding.name.is_some(),
        )
    }

    fn insert(
        &self,
        id: ListenerId,
        pattern: &str,
        listener: Arc<dyn Listener>,
    ) -> Result<ListenerId> {
        let entry = self.insert_entry(id, pattern, listener, &ListenerLimits::default(), false)?;
        Ok(entry.id.clone())
    }

    fn insert_entry(
        &self,
        id: ListenerId,
        pattern: &str,
        listener: Arc<dyn Listener>,
        limits: &ListenerLimits,
        shared: bool,
    ) -> Result<Arc<ListenerEntry>> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let pattern = validate_pattern(pattern)?;
        limits.validate()?;
        let counters = self.inner().metrics.listener(pattern, id.as_str());
        let limiter = limits.is_limited().then(|| {
            let waited = self.inner().metrics.limit_wait(pattern, id.as_str());
            let store = self.inner().store.as_ref().filter(|_| shared);
            Limiter::new(limits.clone(), id.as_str(), store, waited)
        });
        let entry = Arc::new(ListenerEntry::new(id, pattern, listener, counters, limiter));
        self.inner()
            .index
            .insert(pattern, Arc::clone(&entry), |other| other.id == entry.id)
            .map_err(|_| Error::DuplicateListener(entry.id.to_string()))?;
        if self.inner().consumer.started.load(Ordering::Acquire) {
            // Deliveries taken since the start went without this listener.
            tracing::warn!(
                listener = entry.id.as_str(),
                pattern,
                "listener registered after start(): deliveries the bus took before did not run \
                 it; register every listener before start()"
            );
        }
        Ok(entry)
    }

    /// Registers every binding, or none: if one fails, those registered
    /// before it are removed again.
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
        Ok(registered.iter().map(|entry| entry.id.clone()).collect())
    }

    /// Starts consuming the bus's queue store: from here on the bus takes
    /// deliveries from the store and runs its listeners on them. Call it once
    /// every listener is registered — a delivery runs the listeners
    /// registered when it is dispatched, and is then acknowledged, so a
    /// listener registered later misses the deliveries taken before it (the
    /// bus logs a warning when that happens).
    ///
    /// Nothing is delivered from the store before `start`. Until then a bus
    /// with a queue store only emits; the first event it enqueues unstarted
    /// logs a warning, and closing or dropping an unstarted bus that has
    /// listeners logs one too. A bus with no store or a store without a
    /// queue dispatches every emission at once and needs no start, and one
    /// built with [`consume(false)`](EventBusBuilder::consume) never
    /// consumes: for both, `start` does nothing. A second call does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] on a closed bus; [`Error::NoRuntime`] when called
    /// outside a tokio runtime (the consumer runs as tasks of the caller's
    /// runtime).
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::{EventBus, MemoryStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
    /// let bus = EventBus::builder().store(MemoryStore::queue()).build()?;
    /// bus.on_named("send-receipt", "order.paid", |_ctx| async { Ok(()) })?;
    /// bus.on_named("update-ledger", "order.paid", |_ctx| async { Ok(()) })?;
    /// // Both listeners are registered: deliveries may begin.
    /// bus.start()?;
    /// bus.emit("order.paid", serde_json::json!({ "order": 42 })).persisted().await?;
    /// bus.close().await
    /// # }
    /// ```
    pub fn start(&self) -> Result<()> {
        consumer::start(self.inner())
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

    /// Emits an event on `topic` without waiting, with the caller's tracing
    /// span as the parent of the listener spans. `event` is an
    /// [`Event`](crate::Event), a [`Payload`](crate::Payload), or any
    /// serializable value.
    ///
    /// Returns at once; the listeners run on the pool. The returned
    /// [`Emission`] streams their errors and ends when the last one finishes.
    /// The bus's queue is bounded ([`EventBusBuilder::queue_capacity`]): when
    /// it is full the emission yields [`Error::QueueFull`] (and the pool's
    /// `soiree_pool_tasks_rejected_total` counts it) — use
    /// [`EventBus::emit_async`] to wait for room instead.
    ///
    /// With a store the event is persisted first, by a task of its own (never
    /// behind listener jobs): the emission's first outcome is the persistence
    /// result ([`Emission::persisted`]). With a queue store the emission ends
    /// once the event is durably enqueued, yielding [`Error::Store`] if it was
    /// not; the listeners run later in whichever process consumes it, and
    /// their errors reach that bus's error handler (or its log).
    ///
    /// Errors that stop the emission before dispatch come as its only item:
    /// [`Error::InvalidTopicName`], [`Error::EventTopicMismatch`],
    /// [`Error::QueueFull`], [`Error::Closed`], [`Error::NoRuntime`]. The
    /// error handler is shown a refusal and a store or serialization error
    /// but cannot hide them from the emission.
    pub fn emit(&self, topic: &str, event: impl IntoEvent) -> Emission {
        match self.prepare(None, topic, event) {
            Ok(state) => self.accept_now(state),
            Err(emission) => emission,
        }
    }

    /// Emits `event` on its own topic (the Go idiom
    /// `bus.Emit(event.Topic(), event)`), without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use soiree::{Event, EventBus};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let bus = EventBus::new();
    /// bus.on("user.created", |_ctx| async { Ok(()) }).unwrap();
    /// let event = Event::new("user.created", "ada");
    /// let errors: Vec<_> = bus.emit_event(event).collect().await;
    /// assert!(errors.is_empty());
    /// # }
    /// ```
    pub fn emit_event(&self, event: crate::Event) -> Emission {
        let topic = event.topic().to_owned();
        self.emit(&topic, event)
    }

    /// [`EventBus::emit_event`], waiting for room as [`EventBus::emit_async`].
    ///
    /// # Cancel safety
    ///
    /// As [`EventBus::emit_async`].
    pub async fn emit_event_async(&self, event: crate::Event) -> Emission {
        let topic = event.topic().to_owned();
        self.emit_async(&topic, event).await
    }

    /// Emits with a request [`Context`]: its cancellation, deadline,
    /// extensions and span reach every listener. Does not wait, as
    /// [`EventBus::emit`].
    pub fn emit_with_context(
        &self,
        context: Context,
        topic: &str,
        event: impl IntoEvent,
    ) -> Emission {
        match self.prepare(Some(context), topic, event) {
            Ok(state) => self.accept_now(state),
            Err(emission) => emission,
        }
    }

    /// Emits an event, waiting for room in the bus's queue: the
    /// backpressured form of [`EventBus::emit`], for producers that may
    /// outrun the listeners.
    ///
    /// From inside a listener of this bus it never waits on a full queue
    /// (the workers it would wait for may all be waiting too): the calling
    /// task runs the new emission's listeners itself before returning.
    ///
    /// # Cancel safety
    ///
    /// Cancelling the wait drops the event unqueued (nothing was accepted);
    /// once it returns, the event is accepted and dropping the [`Emission`]
    /// does not cancel it.
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::EventBus;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
    /// let bus = EventBus::builder().workers(2).queue_capacity(16).build()?;
    /// bus.on("tick", |_ctx| async { Ok(()) })?;
    /// for i in 0..1_000 {
    ///     // Waits whenever 16 events are queued already.
    ///     bus.emit_async("tick", i).await.detach();
    /// }
    /// bus.close().await
    /// # }
    /// ```
    pub async fn emit_async(&self, topic: &str, event: impl IntoEvent) -> Emission {
        match self.prepare(None, topic, event) {
            Ok(state) => self.accept_waiting(state).await,
            Err(emission) => emission,
        }
    }

    /// [`EventBus::emit_async`] with a request [`Context`].
    ///
    /// # Cancel safety
    ///
    /// As [`EventBus::emit_async`].
    pub async fn emit_async_with_context(
        &self,
        context: Context,
        topic: &str,
        event: impl IntoEvent,
    ) -> Emission {
        match self.prepare(Some(context), topic, event) {
            Ok(state) => self.accept_waiting(state).await,
            Err(emission) => emission,
        }
    }

    /// Checks and routes an emission and counts it in the pool; `Err` is the
    /// emission already over (failed, or heard by nobody).
    fn prepare(
        &self,
        context: Option<Context>,
        topic: &str,
        event: impl IntoEvent,
    ) -> Result<Arc<EmissionState>, Emission> {
        let inner = self.inner();
        if self.is_closed() {
            return Err(Emission::failed(Error::Closed));
        }
        let queued = inner.store.as_deref().is_some_and(|s| s.queue().is_some());
        // Looked up here, once: the route travels with the job, so the
        // worker touches no lock of the route cache. A cached route's topic
        // was validated when it was cached: a hit skips the check.
        let route = match inner.index.cached_route(topic) {
            Some(route) => route,
            None => inner
                .index
                .route(validate_topic(topic).map_err(Emission::failed)?),
        };
        let mut event = event.into_event(&route.topic).map_err(Emission::failed)?;
        if route.listeners.is_empty() && inner.store.is_none() {
            // Often a mistyped topic: make it findable.
            inner.metrics.unrouted.inc();
            tracing::debug!(
                topic = &*route.topic,
                "emit with no listener: nobody hears it"
            );
            return Err(Emission::failed_with(None));
        }
        match context {
            Some(context) => event.set_context(context),
            None => event.adopt_current_span(),
        }
        event
            .properties()
            .ensure_event_id(inner.id_generator.as_deref());
        // The trace travels with an event that leaves the process.
        #[cfg(feature = "otel")]
        if inner.store.is_some() {
            crate::event::trace_context::inject(&event);
        }
        // A due time or a unique key: one branch for events without.
        if event.has_options()
            && inner.store.is_none()
            && let Some(emission) = super::timed::intercept(inner, &event)
        {
            return Err(emission);
        }
        let work = if queued {
            inner.warn_if_unstarted(&route.topic);
            Work::Enqueue
        } else {
            Work::Dispatch(route)
        };
        inner.metrics.emitted.inc();
        let slot = inner.pool.enter();
        let persisted = inner.persister.is_none();
        Ok(Arc::new(EmissionState::new(
            event, work, slot, true, persisted,
        )))
    }

    /// Accepts a prepared emission without waiting.
    fn accept_now(&self, state: Arc<EmissionState>) -> Emission {
        match self.try_accept(&state) {
            Ok(()) => Emission::running(state, self.inner(), inside_job()),
            Err(rejected) => self.refuse(&state, rejected),
        }
    }

    /// Hands a prepared emission to the persister (with a store) or the pool.
    fn try_accept(&self, state: &Arc<EmissionState>) -> Result<(), Rejected> {
        let inner = self.inner();
        if let Some(persister) = &inner.persister {
            return persister.try_accept(inner, Arc::clone(state)).map_err(
                |refused| match refused {
                    NotAccepted::Full => Rejected::Full,
                    NotAccepted::Closed => Rejected::Closed,
                },
            );
        }
        inner
            .pool
            .try_push(claimable(state), || Dispatcher(Arc::clone(inner)))
            .map_err(|(rejected, _)| rejected)
    }

    /// Accepts a prepared emission, waiting for room; from inside a job, runs
    /// it in the calling task instead of waiting.
    async fn accept_waiting(&self, state: Arc<EmissionState>) -> Emission {
        let inner = self.inner();
        if inside_job() {
            return match self.try_accept(&state) {
                Ok(()) => Emission::running(state, inner, true),
                Err(Rejected::Full) => {
                    // The caller runs it: waiting could wait for itself.
                    persist_inline(inner, Arc::clone(&state)).await;
                    Emission::running(state, inner, true)
                }
                Err(rejected) => self.refuse(&state, rejected),
            };
        }
        // Cancelled while waiting: the event was not accepted.
        let mut unaccepted = CancelSlot(Some((inner, state.slot)));
        let accepted = if let Some(persister) = &inner.persister {
            persister
                .accept(inner, Arc::clone(&state))
                .await
                .map_err(|_| Rejected::Closed)
        } else {
            inner
                .pool
                .push(claimable(&state), || Dispatcher(Arc::clone(inner)))
                .await
                .map_err(|(rejected, _)| rejected)
        };
        unaccepted.0 = None;
        match accepted {
            Ok(()) => Emission::running(state, inner, false),
            Err(rejected) => self.refuse(&state, rejected),
        }
    }

    /// An emission refused before it was accepted.
    fn refuse(&self, state: &EmissionState, rejected: Rejected) -> Emission {
        let inner = self.inner();
        inner.pool.cancel(state.slot, Some(&rejected));
        let error = rejected.into_error();
        // Shown to the error handler (a detached emission's refusal reaches
        // it), and reported by the emission whatever the handler answers.
        show_handler(inner, &state.event, &error);
        if matches!(error, Error::QueueFull) {
            tracing::debug!(
                topic = state.event.topic(),
                "emit refused: the queue is full"
            );
        }
        Emission::failed(error)
    }

    /// Waits until every emission made before the call has finished (not
    /// the ones made while it waits, so it returns under a steady stream of
    /// new work too); with a queue store that this bus consumes, also until
    /// the queue holds nothing unacknowledged (in a queue shared with busy
    /// producers elsewhere, that may take as long as they keep producing).
    /// From inside a listener it does not wait for the caller's own emission.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only observes the bus.
    pub async fn wait_for_idle(&self) {
        let inner = self.inner();
        loop {
            inner.pool.wait_for_idle().await;
            // From inside a listener the caller's own delivery is unacknowledged
            // until it returns: waiting for the backlog would wait for itself.
            let consuming = inner.consumer.started.load(Ordering::Acquire)
                && !self.is_closed()
                && !inner.pool.caller_is_inside();
            let Some(queue) = inner
                .store
                .as_deref()
                .and_then(|s| s.queue())
                .filter(|_| consuming)
            else {
                return;
            };
            match queue.backlog().await {
                Ok(0) if inner.pool.pending() == 0 => return,
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "cannot read the queue's backlog"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Closes the bus: new emissions yield [`Error::Closed`], every event
    /// accepted so far is persisted (with a store), the consumers stop
    /// dequeuing (entries in flight finish and are acknowledged; the rest
    /// stay queued for other consumers), and queued and running emissions
    /// finish before it returns.
    ///
    /// With a queue store, `close` waits for the acknowledgements (and
    /// failures and hand-backs) of its consumer for at most the queue's
    /// [`close_timeout`](crate::EventQueue::close_timeout) after the last
    /// listener finished: one deadline for all of them, so a hung store
    /// delays `close` by about that much. What is not settled by then is
    /// abandoned with a warning that counts it, and delivered again later
    /// (at least once: listeners that already ran may run again, unless the
    /// store recorded their success).
    ///
    /// Called from inside one of the bus's listeners it does not wait (the
    /// work it would wait for may need the caller's worker): the bus is
    /// closed and its work finishes in the background.
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
        live::unregister(inner.live_key);
        inner.warn_if_never_started();
        inner.scheduled.close();
        if inner.pool.caller_is_inside() {
            inner.shut_down_in_background();
            return Ok(());
        }
        // Stop taking deliveries before closing the pool, so that no delivery
        // already taken is refused a worker.
        inner.consumer.shutdown.cancel();
        let consumer = inner.consumer.consumer_task().take();
        if let Some(consumer) = consumer {
            let _ = consumer.await;
        }
        // Every accepted event is persisted and handed to the pool first.
        if let Some(persister) = &inner.persister {
            persister.flush().await;
        }
        inner.pool.close();
        inner.pool.wait_for_idle().await;
        // The acknowledger flushes once every delivery job is gone, within
        // the queue's close timeout.
        consumer::finish(inner).await;
        Ok(())
    }

    /// Reports whether [`EventBus::close`] was called (or every handle of
    /// the bus was dropped).
    pub fn is_closed(&self) -> bool {
        self.inner().closed.load(Ordering::Acquire)
    }

    /// The bus's store, if it has one.
    pub fn store(&self) -> Option<&dyn crate::EventStore> {
        self.inner().store.as_deref()
    }

    /// The most emissions dispatched at once.
    pub fn workers(&self) -> usize {
        self.inner().pool.workers()
    }

    /// The `pool` label of the bus's metrics: its pool name, or `name-2`, …
    /// while another live bus or pool of the same registry has the name.
    pub fn metrics_label(&self) -> &str {
        self.inner().pool.label()
    }

    /// The most emissions that wait in the bus's queue (see
    /// [`EventBusBuilder::queue_capacity`]).
    pub fn queue_capacity(&self) -> usize {
        self.inner().pool.capacity()
    }

    /// Changes the number of workers while the bus runs; the queue store's
    /// consumer follows (it takes at most that many deliveries at once).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for zero workers.
    pub fn resize(&self, workers: usize) -> Result<()> {
        let inner = self.inner();
        let before = inner.pool.workers();
        inner
            .pool
            .resize(workers, || Dispatcher(Arc::clone(inner)))?;
        inner.consumer.resize(before, workers);
        Ok(())
    }
}

/// The pool's job for an emission, ready to be claimed by a worker (or by a
/// task awaiting the emission).
fn claimable(state: &Arc<EmissionState>) -> Queued<super::dispatch::Job> {
    state.make_claimable();
    Queued {
        job: super::dispatch::Job::Emission(Arc::clone(state)),
        slot: state.slot,
    }
}

/// Gives back an emission's slot when waiting for room is cancelled.
struct CancelSlot<'a>(Option<(&'a Arc<BusInner>, crate::pool::Slot)>);

impl Drop for CancelSlot<'_> {
    fn drop(&mut self) {
        if let Some((inner, slot)) = self.0.take() {
            inner.pool.cancel(slot, None);
        }
    }
}
