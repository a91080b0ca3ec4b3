//! Configuring a bus.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::ConsumerConfig;
use super::persist::Persister;
use super::unheard::UnheardDeliveries;
use super::{BusInner, ErrorHandler, EventBus, IdGenerator, PanicHandler, live};
#[cfg(feature = "metrics")]
use crate::MetricsRegistry;
use crate::listener::PipelineHandle;
use crate::metrics::ListenerMetrics;
use crate::pool::WorkQueue;
use crate::topic::TopicIndex;
use crate::{Error, Event, EventStore, ListenerPanic, PoolOptions, Result, RetryPolicy};

/// How long a consumer waits on an empty queue before looking again.
const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(1);

/// Builds an [`EventBus`] (the Go package's functional options).
///
/// # Examples
///
/// ```
/// use soiree::{EventBus, RetryPolicy};
///
/// let bus = EventBus::builder()
///     .workers(4)
///     .pool_name("orders")
///     .retry(RetryPolicy::attempts(3).unwrap())
///     .error_handler(|event, err| {
///         eprintln!("{} failed: {err}", event.topic());
///         Some(err)
///     })
///     .id_generator(|| format!("evt-{}", uuid_like()))
///     .build()
///     .unwrap();
/// # drop(bus);
/// # fn uuid_like() -> u64 { 42 }
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct EventBusBuilder {
    pool: PoolOptions,
    error_handler: Option<ErrorHandler>,
    panic_handler: Option<PanicHandler>,
    id_generator: Option<IdGenerator>,
    store: Option<Arc<dyn EventStore>>,
    retry: RetryPolicy,
    error_buffer: usize,
    client: Option<Arc<dyn Any + Send + Sync>>,
    consume: bool,
    unheard: UnheardDeliveries,
    poll_wait: Duration,
    listener_timing: bool,
    listener_timeout: Option<Duration>,
    max_parked: usize,
}

impl Default for EventBusBuilder {
    fn default() -> Self {
        Self {
            pool: PoolOptions::default(),
            error_handler: None,
            panic_handler: None,
            id_generator: None,
            store: None,
            retry: RetryPolicy::never(),
            error_buffer: 10,
            client: None,
            consume: true,
            unheard: UnheardDeliveries::Acknowledge,
            poll_wait: DEFAULT_POLL_WAIT,
            listener_timing: false,
            max_parked: super::park::DEFAULT_MAX_PARKED,
            listener_timeout: None,
        }
    }
}

impl EventBusBuilder {
    /// The most emissions that wait for a worker (default
    /// [`DEFAULT_QUEUE_CAPACITY`](crate::DEFAULT_QUEUE_CAPACITY)); at least 1.
    /// With a store, also the most events waiting to be persisted. A full
    /// queue makes [`EventBus::emit`] yield [`Error::QueueFull`] and
    /// [`EventBus::emit_async`] wait: memory stays bounded however fast
    /// producers are.
    ///
    /// # Examples
    ///
    /// ```
    /// let bus = soiree::EventBus::builder().queue_capacity(1024).build().unwrap();
    /// assert_eq!(bus.queue_capacity(), 1024);
    /// ```
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.pool = self.pool.queue_capacity(capacity);
        self
    }

    /// The most listener runs that wait on a limit off the workers at once
    /// (default 4096; see [`ListenerBinding::max_concurrent`](crate::ListenerBinding::max_concurrent)).
    /// A run whose limit has no room is parked: it leaves its worker and
    /// waits in a task of its own, and with a queue store its delivery
    /// leaves the consumer's count of deliveries in flight, so other events
    /// go on. Past this many, a run waits for its limit on its worker: the
    /// bound on what parked runs hold in memory.
    ///
    /// # Examples
    ///
    /// ```
    /// let bus = soiree::EventBus::builder().max_parked(100).build().unwrap();
    /// # drop(bus);
    /// ```
    pub fn max_parked(mut self, runs: usize) -> Self {
        self.max_parked = runs;
        self
    }

    /// Cancels a listener call that runs longer than `limit` (default: no
    /// limit): it ends with [`Error::TimedOut`], which is not retried, and
    /// with a queue store the delivery counts as failed (see
    /// [`EventQueue::fail`](crate::EventQueue::fail)), so a hung listener
    /// cannot hold a worker (or a store's lease) forever. The listener's
    /// future is dropped at the limit: it must be cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use soiree::{Error, EventBus};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let bus = EventBus::builder()
    ///     .listener_timeout(Duration::from_millis(20))
    ///     .build()
    ///     .unwrap();
    /// bus.on("job.run", |_ctx| async {
    ///     std::future::pending::<()>().await; // hangs
    ///     Ok(())
    /// })
    /// .unwrap();
    /// let errors: Vec<Error> = bus.emit("job.run", ()).collect().await;
    /// assert!(matches!(errors.as_slice(), [Error::TimedOut { .. }]));
    /// # }
    /// ```
    pub fn listener_timeout(mut self, limit: Duration) -> Self {
        self.listener_timeout = Some(limit);
        self
    }

    /// Times every listener call into the histogram
    /// `soiree_listener_call_duration_seconds{pool,pattern,listener}`
    /// (default off: two clock reads per call, which is a large share of a
    /// fast listener's cost). The counters `soiree_listener_calls_total` and
    /// `soiree_listener_retries_total` are always kept.
    ///
    /// # Examples
    ///
    /// ```
    /// let bus = soiree::EventBus::builder().listener_timing(true).build().unwrap();
    /// # drop(bus);
    /// ```
    pub fn listener_timing(mut self, timing: bool) -> Self {
        self.listener_timing = timing;
        self
    }

    /// The most emissions dispatched at once (default 10).
    pub fn workers(mut self, workers: usize) -> Self {
        self.pool = self.pool.workers(workers);
        self
    }

    /// The `pool` label of the bus's pool metrics (default `soiree`).
    pub fn pool_name(mut self, name: impl Into<String>) -> Self {
        self.pool = self.pool.name(name);
        self
    }

    /// Where the bus's metrics go (default: [`MetricsRegistry::global`]).
    #[cfg(feature = "metrics")]
    pub fn metrics_registry(mut self, registry: MetricsRegistry) -> Self {
        self.pool = self.pool.registry(registry);
        self
    }

    /// Sees every final listener error before it reaches the emission, and
    /// may transform it or swallow it (return `None`).
    ///
    /// It is also shown an emission's own failure — refused for a full queue
    /// ([`Error::QueueFull`]) or a closed bus, or not persisted
    /// ([`Error::Store`], [`Error::Serialization`]) — detached emissions'
    /// included, but cannot hide it: [`Emission::persisted`](crate::Emission::persisted)
    /// and the emission report that failure whatever the handler returns
    /// (the handler gets a copy, whose source error is kept as text).
    pub fn error_handler(
        mut self,
        handler: impl Fn(&Event, Error) -> Option<Error> + Send + Sync + 'static,
    ) -> Self {
        self.error_handler = Some(Arc::new(handler));
        self
    }

    /// Told about every caught listener panic (the emission still gets
    /// [`Error::Panicked`]).
    pub fn panic_handler(
        mut self,
        handler: impl Fn(&ListenerPanic) + Send + Sync + 'static,
    ) -> Self {
        self.panic_handler = Some(Arc::new(handler));
        self
    }

    /// Makes listener and event ids (default: ULIDs).
    pub fn id_generator(mut self, generator: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.id_generator = Some(Arc::new(generator));
        self
    }

    /// Persists events and results; a store with a queue also carries events
    /// between processes (see [`EventStore`]).
    pub fn store(self, store: impl EventStore) -> Self {
        self.shared_store(Arc::new(store))
    }

    /// As [`EventBusBuilder::store`], for a store shared with other code.
    pub fn shared_store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Retries failing listeners (default: no retries).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The room reserved for each emission's errors (the Go package's
    /// `ErrChanBufferSize`, default 10). Unlike Go's channel it is not a
    /// limit: errors past it are kept, never dropped.
    pub fn error_buffer(mut self, size: usize) -> Self {
        self.error_buffer = size;
        self
    }

    /// A client (database handle, API client, …) that listeners reach with
    /// [`EventContext::client`](crate::EventContext::client).
    pub fn client<T: Send + Sync + 'static>(mut self, client: T) -> Self {
        self.client = Some(Arc::new(client));
        self
    }

    /// Whether this bus consumes its queue store (default true). A bus that
    /// only emits (a producer process) turns it off. Consuming starts at
    /// [`EventBus::start`], once every listener is registered.
    pub fn consume(mut self, consume: bool) -> Self {
        self.consume = consume;
        self
    }

    /// What the bus does with a delivery from its queue store that none of
    /// its listeners hears (default [`UnheardDeliveries::Acknowledge`]).
    /// Either way it is counted and logged.
    pub fn unheard_deliveries(mut self, policy: UnheardDeliveries) -> Self {
        self.unheard = policy;
        self
    }

    /// How long a consumer's dequeue waits for events before looking again
    /// (default 1 s). Bounds how long [`EventBus::close`] takes.
    pub fn poll_wait(mut self, wait: Duration) -> Self {
        self.poll_wait = wait;
        self
    }

    /// Builds the bus.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for zero workers or a zero poll wait.
    pub fn build(self) -> Result<EventBus> {
        if self.poll_wait.is_zero() {
            return Err(Error::InvalidConfig(
                "the poll wait must be positive".into(),
            ));
        }
        if self.listener_timeout.is_some_and(|limit| limit.is_zero()) {
            return Err(Error::InvalidConfig(
                "the listener timeout must be positive".into(),
            ));
        }
        self.pool.validate()?;
        Ok(self.build_validated())
    }

    /// Builds from options that passed validation (the defaults do).
    pub(crate) fn build_validated(self) -> EventBus {
        let registry = self.pool.metrics_registry();
        let live_key = live::next_key();
        let persister = self
            .store
            .as_ref()
            .map(|_| Persister::new(self.pool.queue_capacity));
        let pool = WorkQueue::new(&self.pool);
        let metrics =
            crate::metrics::BusMetrics::new(&registry, pool.label(), self.listener_timing);
        let shutdown = CancellationToken::new();
        let pipeline = PipelineHandle {
            store: self.store.clone(),
            retry: self.retry,
            listener_timeout: self.listener_timeout,
            panic_handler: self.panic_handler,
            shutdown: shutdown.clone(),
            client: self.client.clone(),
            metrics: ListenerMetrics::new(&registry),
        };
        let inner = BusInner {
            pool,
            persister,
            index: TopicIndex::default(),
            error_handler: self.error_handler,
            id_generator: self.id_generator,
            store: self.store,
            pipeline,
            error_buffer: self.error_buffer,
            client: self.client,
            closed: AtomicBool::new(false),
            consumer: ConsumerConfig {
                enabled: self.consume,
                started: AtomicBool::new(false),
                poll_wait: self.poll_wait,
                shutdown,
                abandon: CancellationToken::new(),
                tasks: TaskTracker::new(),
                consumer: std::sync::Mutex::new(None),
                in_flight: Arc::new(tokio::sync::Semaphore::new(self.pool.workers)),
                in_flight_debt: std::sync::atomic::AtomicUsize::new(0),
                leases: crate::store::kit::lease_keeper::LeaseKeeper::default(),
                unheard: self.unheard,
                unheard_warned_at: std::sync::atomic::AtomicU64::new(0),
                unheard_since_warned: std::sync::atomic::AtomicU64::new(0),
                warned_unstarted: AtomicBool::new(false),
            },
            metrics,
            parking: Arc::new(tokio::sync::Semaphore::new(
                self.max_parked.min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            live_key,
            handles: std::sync::atomic::AtomicUsize::new(0),
            scheduled: crate::schedule::scheduler::Scheduler::default(),
        };
        let inner = Arc::new(inner);
        live::register(live_key, Arc::downgrade(&inner));
        EventBus::from_inner(inner)
    }
}

impl fmt::Debug for EventBusBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBusBuilder")
            .field("pool", &self.pool)
            .field("store", &self.store)
            .field("retry", &self.retry)
            .field("error_buffer", &self.error_buffer)
            .field("consume", &self.consume)
            .field("unheard", &self.unheard)
            .field("poll_wait", &self.poll_wait)
            .finish_non_exhaustive()
    }
}

impl Drop for BusInner {
    fn drop(&mut self) {
        live::unregister(self.live_key);
    }
}
