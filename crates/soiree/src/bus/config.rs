//! The bus's shared state and handler types.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::dispatch::Job;
use super::persist::Persister;
use super::unheard::UnheardDeliveries;
use crate::listener::{ListenerEntry, PipelineHandle};
use crate::pool::WorkQueue;
use crate::topic::TopicIndex;
use crate::{Error, Event, EventStore, ListenerPanic};

/// Sees every final listener error before it reaches the emission; returns the
/// error to deliver (possibly transformed) or `None` to swallow it.
pub type ErrorHandler = Arc<dyn Fn(&Event, Error) -> Option<Error> + Send + Sync>;

/// Told about every caught listener panic.
pub type PanicHandler = Arc<dyn Fn(&ListenerPanic) + Send + Sync>;

/// Makes listener and event ids.
pub type IdGenerator = Arc<dyn Fn() -> String + Send + Sync>;

/// The bus's configuration, registry, pool and persister, shared by its
/// handles, workers and jobs.
pub(crate) struct BusInner {
    /// The listener jobs: a pool that knows nothing of the bus.
    pub(crate) pool: Arc<WorkQueue<Job>>,
    /// The store's own path, with a store: events are persisted here, never
    /// queued behind listener jobs.
    pub(crate) persister: Option<Persister>,
    pub(crate) index: TopicIndex<ListenerEntry>,
    pub(crate) error_handler: Option<ErrorHandler>,
    /// `None`: ULIDs.
    pub(crate) id_generator: Option<IdGenerator>,
    pub(crate) store: Option<Arc<dyn EventStore>>,
    /// What the listener pipeline needs of the bus (retry policy, listener
    /// timeout, panic handler, …), built once: the listener layer's only
    /// view of the bus's configuration.
    pub(crate) pipeline: PipelineHandle,
    pub(crate) error_buffer: usize,
    pub(crate) client: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) closed: AtomicBool,
    pub(crate) consumer: ConsumerConfig,
    pub(crate) metrics: crate::metrics::BusMetrics,
    pub(crate) live_key: u64,
    /// `EventBus` handles alive: dropping the last one shuts the bus down.
    pub(crate) handles: std::sync::atomic::AtomicUsize,
    /// Delayed events held in this process (no store, or no queue).
    pub(crate) scheduled: crate::schedule::scheduler::Scheduler,
    /// The waiting room of listener runs parked on a limit.
    pub(crate) parking: Arc<tokio::sync::Semaphore>,
}

/// How the bus consumes a queue store.
#[derive(Debug)]
pub(crate) struct ConsumerConfig {
    pub(crate) enabled: bool,
    pub(crate) started: AtomicBool,
    pub(crate) poll_wait: Duration,
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when `close` stops waiting for the queue: the settling
    /// calls still running are abandoned.
    pub(crate) abandon: CancellationToken,
    /// The consumer loop, the hand-back at close and the acknowledger.
    pub(crate) tasks: TaskTracker,
    /// The consumer loop alone, which `close` waits for before closing the pool.
    pub(crate) consumer: Mutex<Option<JoinHandle<()>>>,
    /// Deliveries in flight at once: follows the bus's worker count.
    pub(crate) in_flight: Arc<tokio::sync::Semaphore>,
    /// Permits still to take out of `in_flight` after shrinking it.
    pub(crate) in_flight_debt: std::sync::atomic::AtomicUsize,
    /// Deliveries dispatched and not yet settled: their leases are
    /// extended while their listeners run.
    pub(crate) leases: crate::store::kit::lease_keeper::LeaseKeeper,
    /// How deliveries no listener hears are settled.
    pub(crate) unheard: UnheardDeliveries,
    /// When an unheard delivery was last logged (ms since the epoch; 0:
    /// never), and how many were not logged since.
    pub(crate) unheard_warned_at: AtomicU64,
    pub(crate) unheard_since_warned: AtomicU64,
    /// Set once the bus warned that it queues events it was never started
    /// to consume.
    pub(crate) warned_unstarted: AtomicBool,
}

impl ConsumerConfig {
    pub(crate) fn consumer_task(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.consumer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ConsumerConfig {
    /// Follows a change of the bus's worker count.
    pub(crate) fn resize(&self, before: usize, after: usize) {
        use std::sync::atomic::Ordering;
        if after > before {
            let mut more = after - before;
            // Pay off permits still owed from an earlier shrink first.
            let _ = self
                .in_flight_debt
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |debt| {
                    let paid = debt.min(more);
                    more -= paid;
                    Some(debt - paid)
                });
            self.in_flight.add_permits(more);
        } else {
            let fewer = before - after;
            let forgotten = self.in_flight.forget_permits(fewer);
            // Permits in use now are forgotten when they come back.
            self.in_flight_debt
                .fetch_add(fewer - forgotten, Ordering::AcqRel);
        }
    }

    /// Takes one permit owed to a shrink, if any.
    pub(crate) fn pay_debt(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.in_flight_debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |debt| {
                debt.checked_sub(1)
            })
            .is_ok()
    }
}

impl BusInner {
    /// Whether this bus should consume a queue store and has not started.
    fn consumes_unstarted(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.consumer.enabled
            && !self.consumer.started.load(Ordering::Acquire)
            && self.store.as_deref().is_some_and(|s| s.queue().is_some())
    }

    /// Warns once when events are queued on a bus that consumes its queue
    /// store but was never started: nothing of this bus hears them.
    pub(crate) fn warn_if_unstarted(&self, topic: &str) {
        use std::sync::atomic::Ordering;
        // Checked first: once the warning is out, an emit pays one load.
        if !self.consumer.warned_unstarted.load(Ordering::Relaxed)
            && self.consumes_unstarted()
            && !self.consumer.warned_unstarted.swap(true, Ordering::AcqRel)
        {
            tracing::warn!(
                topic,
                "event queued on a bus that was never started: its listeners run only after \
                 start() (call it once every listener is registered), or build the bus with \
                 consume(false) if this process only emits"
            );
        }
    }

    /// Warns when a bus with listeners closes without ever having consumed
    /// its queue store.
    pub(crate) fn warn_if_never_started(&self) {
        if self.consumes_unstarted() && !self.index.patterns().is_empty() {
            tracing::warn!(
                "event bus closed without start(): its listeners never ran on its queue store's \
                 events (they stay queued); call start() once every listener is registered"
            );
        }
    }

    /// The last handle is gone: no one can close the bus any more. Warn if
    /// work is still under way (it is lost if the process exits now), then
    /// let it finish and the workers end.
    pub(crate) fn last_handle_dropped(&self) {
        use std::sync::atomic::Ordering;
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        super::live::unregister(self.live_key);
        self.warn_if_never_started();
        self.scheduled.close();
        let pending = self.pool.pending();
        let unpersisted = self.persister.as_ref().map_or(0, |p| p.unpersisted());
        if pending > 0 || unpersisted > 0 {
            tracing::warn!(
                pending,
                unpersisted,
                "event bus dropped without close() while events were still under way: \
                 they are lost if the process exits before they finish"
            );
        }
        self.shut_down_in_background();
    }

    /// Stops consuming and accepting; what was accepted still finishes,
    /// then the workers end.
    pub(crate) fn shut_down_in_background(&self) {
        self.consumer.shutdown.cancel();
        self.consumer.tasks.close();
        match &self.persister {
            // The persister closes the pool once it handed off the rest.
            Some(persister) if persister.is_running() => persister.stop_then_close_pool(),
            _ => {
                self.pool.close();
            }
        }
    }

    /// A new listener id.
    pub(crate) fn next_id(&self) -> String {
        match &self.id_generator {
            Some(generate) => generate(),
            None => ulid::Ulid::generate().to_string(),
        }
    }
}

impl fmt::Debug for BusInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("store", &self.store)
            .field("retry", &self.pipeline.retry)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}
