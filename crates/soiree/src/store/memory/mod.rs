//! An in-memory store implementing every store ability.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{
    Delivery, EventHistory, EventQueue, EventStore, FailedDelivery, HandlerDedup, Page,
    StoredResult,
};
use crate::{Error, Result, StoredEvent};

/// Deliveries not acknowledged within this time are delivered again.
const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);

/// A store that keeps everything in memory: events, results, a queue with
/// acknowledgement and redelivery, and handler de-duplication.
///
/// It survives nothing, but behaves like the durable stores, so code and tests
/// written against it carry over. Its queue is FIFO; a delivery that is not
/// acknowledged within the visibility timeout (30 s by default) is delivered
/// again.
///
/// # Examples
///
/// ```
/// use soiree::{EventBus, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bus = EventBus::builder().store(MemoryStore::new()).build().unwrap();
/// bus.on("user.created", |_ctx| async { Ok(()) }).unwrap();
/// let errors: Vec<_> = futures::StreamExt::collect(bus.emit("user.created", "ada")).await;
/// assert!(errors.is_empty());
/// bus.wait_for_idle().await;
/// # }
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    arrived: Notify,
    visibility_timeout: Duration,
    as_queue: bool,
}

mod inspect;

#[derive(Debug, Default)]
struct State {
    events: Vec<Stamped<StoredEvent>>,
    results: Vec<Stamped<StoredResult>>,
    succeeded: HashSet<(String, String)>,
    next_receipt: u64,
    ready: VecDeque<Queued>,
    in_flight: HashMap<String, (Queued, Instant)>,
    dead_letters: Vec<Letter>,
    next_letter: u64,
}

/// A stored item and when it was stored.
#[derive(Debug, Clone)]
struct Stamped<T> {
    item: T,
    at: SystemTime,
}

impl<T> Stamped<T> {
    fn now(item: T) -> Self {
        Self {
            item,
            at: SystemTime::now(),
        }
    }
}

/// A dead letter: a failed delivery with its error.
#[derive(Debug, Clone)]
struct Letter {
    id: u64,
    event: StoredEvent,
    error: String,
    deliveries: u32,
    at: SystemTime,
}

#[derive(Debug, Clone)]
struct Queued {
    event: StoredEvent,
    deliveries: u32,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store that persists events and results and dispatches in process
    /// (no queue).
    pub fn new() -> Self {
        Self {
            state: Mutex::default(),
            arrived: Notify::new(),
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            as_queue: false,
        }
    }

    /// A store that also acts as a queue: `emit` enqueues and the bus's
    /// consumers dispatch.
    pub fn queue() -> Self {
        Self {
            as_queue: true,
            ..Self::new()
        }
    }

    /// Sets how long a delivery may stay unacknowledged before it is
    /// delivered again.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a zero timeout.
    pub fn with_visibility_timeout(mut self, timeout: Duration) -> Result<Self> {
        if timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "the visibility timeout must be positive".into(),
            ));
        }
        self.visibility_timeout = timeout;
        Ok(self)
    }

    /// Every stored event, oldest first.
    pub fn events(&self) -> Vec<StoredEvent> {
        self.lock().events.iter().map(|e| e.item.clone()).collect()
    }

    /// Every stored result, oldest first.
    pub fn results(&self) -> Vec<StoredResult> {
        self.lock().results.iter().map(|r| r.item.clone()).collect()
    }

    /// Failed deliveries of the queue, each with its first error, oldest
    /// first (see [`EventQueue::fail`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::{EventBus, MemoryStore};
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
    /// let store = Arc::new(MemoryStore::queue());
    /// let bus = EventBus::builder().shared_store(store.clone()).build()?;
    /// bus.on("job.run", |_ctx| async { Err("disk full".into()) })?;
    /// let mut emission = bus.emit("job.run", 1);
    /// emission.persisted().await?;
    /// bus.wait_for_idle().await;
    /// let dead = store.dead_letters();
    /// assert_eq!(dead.len(), 1);
    /// assert!(dead[0].1.contains("disk full"));
    /// bus.close().await
    /// # }
    /// ```
    pub fn dead_letters(&self) -> Vec<(StoredEvent, String)> {
        self.lock()
            .dead_letters
            .iter()
            .map(|letter| (letter.event.clone(), letter.error.clone()))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take_ready(&self, max: usize) -> Vec<Delivery> {
        let mut state = self.lock();
        let now = Instant::now();
        let expired: Vec<String> = state
            .in_flight
            .iter()
            .filter(|(_, (_, since))| now.duration_since(*since) >= self.visibility_timeout)
            .map(|(receipt, _)| receipt.clone())
            .collect();
        for receipt in expired {
            if let Some((queued, _)) = state.in_flight.remove(&receipt) {
                state.ready.push_front(queued);
            }
        }
        let mut deliveries = Vec::new();
        while deliveries.len() < max {
            let Some(mut queued) = state.ready.pop_front() else {
                break;
            };
            queued.deliveries += 1;
            state.next_receipt += 1;
            let receipt = state.next_receipt.to_string();
            deliveries.push(Delivery {
                receipt: receipt.clone(),
                event: queued.event.clone(),
                delivery_count: queued.deliveries,
            });
            state.in_flight.insert(receipt, (queued, now));
        }
        deliveries
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn save_event(&self, event: &StoredEvent) -> Result<()> {
        self.lock().events.push(Stamped::now(event.clone()));
        Ok(())
    }

    async fn save_handler_result(&self, result: &StoredResult) -> Result<()> {
        let mut state = self.lock();
        if result.succeeded() && !result.event_id.is_empty() {
            state
                .succeeded
                .insert((result.event_id.clone(), result.handler_id.clone()));
        }
        state.results.push(Stamped::now(result.clone()));
        Ok(())
    }

    fn queue(&self) -> Option<&dyn EventQueue> {
        self.as_queue.then_some(self as &dyn EventQueue)
    }

    fn dedup(&self) -> Option<&dyn HandlerDedup> {
        Some(self)
    }

    fn history(&self) -> Option<&dyn EventHistory> {
        Some(self)
    }
}

#[async_trait]
impl EventQueue for MemoryStore {
    async fn enqueue(&self, event: &StoredEvent) -> Result<()> {
        self.lock().append(event.clone());
        self.arrived.notify_one();
        Ok(())
    }

    async fn dequeue(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let deadline = far_future_if_none(Instant::now().checked_add(wait));
        loop {
            let arrived = self.arrived.notified();
            let deliveries = self.take_ready(max.max(1));
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
            // Wake for new arrivals, and in time for the oldest in-flight
            // delivery to become visible again.
            let wake = self
                .lock()
                .in_flight
                .values()
                .map(|(_, since)| far_future_if_none(since.checked_add(self.visibility_timeout)))
                .min()
                .map_or(deadline, |visible| visible.min(deadline));
            if tokio::time::timeout_at(wake, arrived).await.is_err() && Instant::now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, receipts: &[String]) -> Result<()> {
        let mut state = self.lock();
        for receipt in receipts {
            state.in_flight.remove(receipt);
        }
        Ok(())
    }

    /// Every failed delivery goes to the dead letters.
    fn dead_letters_failure(&self, _delivery_count: u32) -> bool {
        true
    }

    async fn fail(&self, failures: &[FailedDelivery]) -> Result<()> {
        let mut state = self.lock();
        for failure in failures {
            if let Some((queued, _)) = state.in_flight.remove(&failure.receipt) {
                state.next_letter += 1;
                let id = state.next_letter;
                state.dead_letters.push(Letter {
                    id,
                    event: queued.event,
                    error: failure.error.clone(),
                    deliveries: queued.deliveries,
                    at: SystemTime::now(),
                });
            }
        }
        Ok(())
    }

    async fn backlog(&self) -> Result<u64> {
        let state = self.lock();
        Ok((state.ready.len() + state.in_flight.len()) as u64)
    }
}

#[async_trait]
impl HandlerDedup for MemoryStore {
    async fn handler_succeeded(&self, event_id: &str, handler_id: &str) -> Result<bool> {
        Ok(self
            .lock()
            .succeeded
            .contains(&(event_id.to_owned(), handler_id.to_owned())))
    }
}

impl State {
    /// Stores an event and queues it.
    fn append(&mut self, event: StoredEvent) {
        self.ready.push_back(Queued {
            event: event.clone(),
            deliveries: 0,
        });
        self.events.push(Stamped::now(event));
    }
}

#[async_trait]
impl EventHistory for MemoryStore {
    async fn events(&self, cursor: Option<&str>, limit: usize) -> Result<Page<StoredEvent>> {
        page(&self.lock().events, cursor, limit)
    }

    async fn results(&self, cursor: Option<&str>, limit: usize) -> Result<Page<StoredResult>> {
        page(&self.lock().results, cursor, limit)
    }
}

/// Pages over a list by index; the cursor is the index of the next item.
fn page<T: Clone>(items: &[Stamped<T>], cursor: Option<&str>, limit: usize) -> Result<Page<T>> {
    let start = match cursor {
        None => 0,
        Some(cursor) => cursor
            .parse::<usize>()
            .map_err(|_| Error::store(format!("invalid page cursor {cursor:?}")))?,
    };
    let end = start.saturating_add(limit).min(items.len());
    let start = start.min(end);
    Ok(Page {
        items: items[start..end].iter().map(|s| s.item.clone()).collect(),
        next: (end < items.len()).then(|| end.to_string()),
    })
}

/// A deadline that overflowed the clock: about thirty years from now.
fn far_future_if_none(deadline: Option<Instant>) -> Instant {
    deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365 * 30))
}
