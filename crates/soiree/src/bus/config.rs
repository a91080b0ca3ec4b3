//! The bus's shared state and handler types.

use std::any::Any;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::dispatch::Job;
use crate::listener::ListenerEntry;
use crate::pool::PoolCore;
use crate::topic::TopicIndex;
use crate::{Error, Event, EventStore, ListenerPanic, RetryPolicy};

/// Sees every final listener error before it reaches the emission; returns the
/// error to deliver (possibly transformed) or `None` to swallow it.
pub type ErrorHandler = Arc<dyn Fn(&Event, Error) -> Option<Error> + Send + Sync>;

/// Told about every caught listener panic.
pub type PanicHandler = Arc<dyn Fn(&ListenerPanic) + Send + Sync>;

/// Makes listener and event ids.
pub type IdGenerator = Arc<dyn Fn() -> String + Send + Sync>;

/// The bus: its pool, whose jobs share the bus's configuration.
pub(crate) type BusCore = PoolCore<Job>;

/// The bus's configuration and registry, shared by its jobs.
pub(crate) struct BusInner {
    pub(crate) index: TopicIndex<ListenerEntry>,
    pub(crate) error_handler: Option<ErrorHandler>,
    pub(crate) panic_handler: Option<PanicHandler>,
    /// `None`: ULIDs.
    pub(crate) id_generator: Option<IdGenerator>,
    pub(crate) store: Option<Arc<dyn EventStore>>,
    pub(crate) retry: RetryPolicy,
    pub(crate) error_buffer: usize,
    pub(crate) client: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) closed: AtomicBool,
    pub(crate) consumer: ConsumerConfig,
    pub(crate) listener_metrics: crate::metrics::ListenerMetrics,
    pub(crate) live_key: u64,
}

/// How the bus consumes a queue store.
#[derive(Debug)]
pub(crate) struct ConsumerConfig {
    pub(crate) enabled: bool,
    pub(crate) started: AtomicBool,
    pub(crate) poll_wait: Duration,
    pub(crate) shutdown: CancellationToken,
    /// The consumer loop and the acknowledger.
    pub(crate) tasks: TaskTracker,
    /// The consumer loop alone, which `close` waits for before closing the pool.
    pub(crate) consumer: Mutex<Option<JoinHandle<()>>>,
}

impl ConsumerConfig {
    pub(crate) fn consumer_task(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.consumer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl BusInner {
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
            .field("retry", &self.retry)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}
