//! An in-memory store implementing every store ability.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{
    DeferredDelivery, Delivery, EventHistory, EventQueue, EventStore, FailedDelivery, HandlerDedup,
    Page, StoredResult,
};
use crate::schedule::clock;
use crate::{Appended, Error, Result, StoredEvent};

/// Deliveries not acknowledged within this time are delivered again.
const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);

/// The consumer group of a store made by [`MemoryStore::new`] or
/// [`MemoryStore::queue`].
const DEFAULT_GROUP: &str = "default";

/// A store that keeps everything in memory: events, results, a queue with
/// acknowledgement and redelivery, and handler de-duplication.
///
/// It survives nothing, but behaves like the durable stores, so code and tests
/// written against it carry over. Its queue is FIFO; a delivery that is not
/// acknowledged within the visibility timeout (30 s by default) is delivered
/// again.
///
/// Like the durable stores it has consumer groups: a store reads for one
/// group (`default`), and [`in_group`](MemoryStore::in_group) gives another
/// handle on the same data reading for another group. Each group gets every
/// queued event, has its own deliveries and dead letters, and its own record
/// of the listeners that succeeded: a listener's success in one group does
/// not skip a listener of the same name in another.
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
    state: Arc<Mutex<State>>,
    group: Arc<str>,
    /// Signalled when an event arrives for this store's group.
    arrived: Arc<Notify>,
    visibility_timeout: Duration,
    as_queue: bool,
}

mod inspect;
mod lease;
mod limits;

#[derive(Debug, Default)]
struct State {
    events: Vec<Stamped<StoredEvent>>,
    results: Vec<Stamped<StoredResult>>,
    /// (event id, listener id) pairs that succeeded, by group.
    succeeded: HashMap<String, HashSet<(String, String)>>,
    /// The positions in `events` of every enqueued event (replays
    /// excluded), oldest first: a group created later starts with all of
    /// them, as a durable store's new group starts at the oldest event kept.
    enqueued: Vec<usize>,
    groups: HashMap<String, Group>,
    next_receipt: u64,
    next_letter: u64,
    /// Orders delayed events with the same due time.
    next_scheduled: u64,
    /// Unique keys: the event id holding each, and when the hold ends.
    unique: HashMap<String, (String, Instant)>,
    /// Leader leases, by name.
    leases: HashMap<String, lease::Held>,
    /// Shared listener limits: slots and rates.
    limits: limits::LimitState,
}

/// What a consumer group holds of the queue.
#[derive(Debug)]
struct Group {
    ready: VecDeque<Queued>,
    /// Delayed events not yet due, by due time.
    scheduled: BTreeMap<(Instant, u64), Queued>,
    /// Deferred deliveries (snoozed in the store) not yet due, by due
    /// time: apart from `scheduled`, as they are in the backlog and not
    /// cancellable.
    deferred: BTreeMap<(Instant, u64), Queued>,
    in_flight: HashMap<String, (Queued, Instant)>,
    dead_letters: Vec<Letter>,
    arrived: Arc<Notify>,
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
        Self::on(
            Arc::default(),
            DEFAULT_GROUP,
            false,
            DEFAULT_VISIBILITY_TIMEOUT,
        )
    }

    /// A store that also acts as a queue: `emit` enqueues and the bus's
    /// consumers dispatch.
    pub fn queue() -> Self {
        Self::on(
            Arc::default(),
            DEFAULT_GROUP,
            true,
            DEFAULT_VISIBILITY_TIMEOUT,
        )
    }

    /// Another handle on this store's data (events, results, queue) that
    /// reads for consumer group `group`, with this handle's settings.
    ///
    /// Handles of one group share its deliveries; different groups each get
    /// every event, including those enqueued before the group was first
    /// named, and each keeps its own record of the listeners that succeeded.
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::{Event, EventQueue, MemoryStore, StoredEvent};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
    /// let billing = MemoryStore::queue();
    /// let audit = billing.in_group("audit");
    /// let paid = StoredEvent::from_event(&Event::new("order.paid", 42))?;
    /// billing.enqueue(&paid).await?;
    /// assert_eq!(billing.backlog().await?, 1);
    /// assert_eq!(audit.backlog().await?, 1);
    /// assert_eq!(audit.group(), "audit");
    /// # Ok(()) }
    /// ```
    pub fn in_group(&self, group: impl Into<String>) -> Self {
        let group: String = group.into();
        Self::on(
            Arc::clone(&self.state),
            &group,
            self.as_queue,
            self.visibility_timeout,
        )
    }

    /// The consumer group this handle reads for (`default` unless made by
    /// [`in_group`](Self::in_group)).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// A handle on `state` for `group`, which it registers.
    fn on(
        state: Arc<Mutex<State>>,
        group: &str,
        as_queue: bool,
        visibility_timeout: Duration,
    ) -> Self {
        let arrived = {
            let mut guard = lock(&state);
            let State {
                groups,
                enqueued,
                events,
                next_scheduled,
                ..
            } = &mut *guard;
            let entry = groups.entry(group.to_owned()).or_insert_with(|| {
                let mut new = Group::new(Arc::new(Notify::new()));
                for &at in enqueued.iter() {
                    new.add(events[at].item.clone(), next_scheduled);
                }
                new
            });
            Arc::clone(&entry.arrived)
        };
        Self {
            state,
            group: Arc::from(group),
            arrived,
            visibility_timeout,
            as_queue,
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
    /// bus.start()?;
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
        let mut state = self.lock();
        self.group_of(&mut state)
            .dead_letters
            .iter()
            .map(|letter| (letter.event.clone(), letter.error.clone()))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// This handle's group in `state` (registered when the handle was made).
    fn group_of<'s>(&self, state: &'s mut State) -> &'s mut Group {
        state
            .groups
            .entry(self.group.to_string())
            .or_insert_with(|| Group::new(Arc::clone(&self.arrived)))
    }

    fn take_ready(&self, max: usize) -> Vec<Delivery> {
        let mut guard = self.lock();
        let now = Instant::now();
        let mut next_receipt = guard.next_receipt;
        let group = self.group_of(&mut guard);
        let expired: Vec<String> = group
            .in_flight
            .iter()
            .filter(|(_, (_, since))| now.duration_since(*since) >= self.visibility_timeout)
            .map(|(receipt, _)| receipt.clone())
            .collect();
        for receipt in expired {
            if let Some((queued, _)) = group.in_flight.remove(&receipt) {
                group.ready.push_front(queued);
            }
        }
        group.release_due(now);
        let mut deliveries = Vec::new();
        while deliveries.len() < max {
            let Some(mut queued) = group.ready.pop_front() else {
                break;
            };
            queued.deliveries += 1;
            next_receipt += 1;
            let receipt = next_receipt.to_string();
            deliveries.push(Delivery {
                receipt: receipt.clone(),
                event: queued.event.clone(),
                delivery_count: queued.deliveries,
            });
            group.in_flight.insert(receipt, (queued, now));
        }
        guard.next_receipt = next_receipt;
        deliveries
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn save_event(&self, event: &StoredEvent) -> Result<()> {
        // What this store accepts, a store that writes JSON must accept too.
        crate::limits::check_stored(event)?;
        event.due_at()?;
        self.lock().events.push(Stamped::now(event.clone()));
        Ok(())
    }

    async fn save_handler_result(&self, result: &StoredResult) -> Result<()> {
        let mut state = self.lock();
        if result.succeeded() && !result.event_id.is_empty() {
            state
                .succeeded
                .entry(self.group.to_string())
                .or_default()
                .insert((result.event_id.clone(), result.handler_id.clone()));
        }
        state.results.push(Stamped::now(result.clone()));
        Ok(())
    }

    /// Atomic under the store's lock; windows are measured on tokio's
    /// clock (a paused clock drives them).
    async fn append_unique(
        &self,
        event: &StoredEvent,
        key: &str,
        window: Duration,
    ) -> Result<Appended> {
        crate::limits::check_stored(event)?;
        event.due_at()?;
        let Some(id) = event.id() else {
            return Err(Error::store(
                "a unique event needs an event id (soiree.event_id): the bus sets one",
            ));
        };
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(holder) = state.unique_holder(key, now) {
            return Ok(Appended::Existing(holder));
        }
        state.unique.insert(
            key.to_owned(),
            (id.to_owned(), far_future_if_none(now.checked_add(window))),
        );
        if self.as_queue {
            state.append(event.clone());
        } else {
            state.events.push(Stamped::now(event.clone()));
        }
        Ok(Appended::New)
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

    fn leases(&self) -> Option<&dyn crate::LeaderLease> {
        Some(self)
    }

    fn limits(&self) -> Option<&dyn super::SharedLimits> {
        Some(self)
    }
}

#[async_trait]
impl EventQueue for MemoryStore {
    async fn enqueue(&self, event: &StoredEvent) -> Result<()> {
        crate::limits::check_stored(event)?;
        // A due time that does not parse is refused, never guessed.
        event.due_at()?;
        self.lock().append(event.clone());
        Ok(())
    }

    /// Delayed events wait in each group until due (on tokio's clock, so
    /// a paused clock drives them); they are not in the
    /// [`backlog`](EventQueue::backlog) until then.
    fn schedules(&self) -> bool {
        true
    }

    async fn cancel_scheduled(&self, event_id: &str) -> Result<bool> {
        let mut state = self.lock();
        let mut cancelled = false;
        for group in state.groups.values_mut() {
            let before = group.scheduled.len();
            group
                .scheduled
                .retain(|_, queued| queued.event.id() != Some(event_id));
            cancelled |= group.scheduled.len() != before;
        }
        if cancelled {
            // Groups named later must not get it either.
            let State {
                enqueued, events, ..
            } = &mut *state;
            enqueued.retain(|&at| events[at].item.id() != Some(event_id));
        }
        Ok(cancelled)
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
            let wake = {
                let mut state = self.lock();
                let group = self.group_of(&mut state);
                let due = [&group.scheduled, &group.deferred]
                    .into_iter()
                    .filter_map(|waiting| waiting.keys().next().map(|(at, _)| *at))
                    .min();
                group
                    .in_flight
                    .values()
                    .map(|(_, since)| {
                        far_future_if_none(since.checked_add(self.visibility_timeout))
                    })
                    .chain(due)
                    .min()
                    .map_or(deadline, |visible| visible.min(deadline))
            };
            if tokio::time::timeout_at(wake, arrived).await.is_err() && Instant::now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, receipts: &[String]) -> Result<()> {
        let mut state = self.lock();
        let group = self.group_of(&mut state);
        for receipt in receipts {
            group.in_flight.remove(receipt);
        }
        Ok(())
    }

    /// Every failed delivery goes to the dead letters.
    fn dead_letters_failure(&self, _delivery_count: u32) -> bool {
        true
    }

    async fn fail(&self, failures: &[FailedDelivery]) -> Result<()> {
        let mut state = self.lock();
        let mut next_letter = state.next_letter;
        let group = self.group_of(&mut state);
        for failure in failures {
            if let Some((queued, _)) = group.in_flight.remove(&failure.receipt) {
                next_letter += 1;
                let id = next_letter;
                group.dead_letters.push(Letter {
                    id,
                    event: queued.event,
                    error: failure.error.clone(),
                    deliveries: queued.deliveries,
                    at: SystemTime::now(),
                });
            }
        }
        state.next_letter = next_letter;
        Ok(())
    }

    /// Deferred deliveries wait with the group's delayed events (on
    /// tokio's clock, as those), counted in the
    /// [`backlog`](EventQueue::backlog) meanwhile; gone with the process.
    fn defers(&self) -> bool {
        true
    }

    async fn defer(&self, deferrals: &[DeferredDelivery]) -> Result<()> {
        let mut state = self.lock();
        let mut next_scheduled = state.next_scheduled;
        let group = self.group_of(&mut state);
        for deferral in deferrals {
            if let Some((mut queued, _)) = group.in_flight.remove(&deferral.receipt) {
                // Not a delivery: the next one has this one's count.
                queued.deliveries = queued.deliveries.saturating_sub(1);
                next_scheduled += 1;
                group
                    .deferred
                    .insert((clock::deadline(deferral.until), next_scheduled), queued);
            }
        }
        state.next_scheduled = next_scheduled;
        // A waiting dequeue wakes in time for them.
        self.arrived.notify_one();
        Ok(())
    }

    async fn backlog(&self) -> Result<u64> {
        let mut state = self.lock();
        let group = self.group_of(&mut state);
        Ok((group.ready.len() + group.in_flight.len() + group.deferred.len()) as u64)
    }
}

#[async_trait]
impl HandlerDedup for MemoryStore {
    /// Answers for this handle's group only.
    async fn handler_succeeded(&self, event_id: &str, handler_id: &str) -> Result<bool> {
        Ok(self
            .lock()
            .succeeded
            .get(&*self.group)
            .is_some_and(|done| done.contains(&(event_id.to_owned(), handler_id.to_owned()))))
    }
}

impl State {
    /// Stores an event and queues it for every group.
    fn append(&mut self, event: StoredEvent) {
        for group in self.groups.values_mut() {
            group.add(event.clone(), &mut self.next_scheduled);
        }
        self.enqueued.push(self.events.len());
        self.events.push(Stamped::now(event));
    }

    /// The id of the event holding `key` now, if one does; forgets holds
    /// that ended once there are many.
    fn unique_holder(&mut self, key: &str, now: Instant) -> Option<String> {
        if self.unique.len() >= 1024 {
            self.unique.retain(|_, (_, until)| *until > now);
        }
        match self.unique.get(key) {
            Some((id, until)) if *until > now => Some(id.clone()),
            _ => None,
        }
    }
}

impl Group {
    fn new(arrived: Arc<Notify>) -> Self {
        Self {
            ready: VecDeque::new(),
            scheduled: BTreeMap::new(),
            deferred: BTreeMap::new(),
            in_flight: HashMap::new(),
            dead_letters: Vec::new(),
            arrived,
        }
    }

    /// Queues an event: ready now, or held until its due time.
    fn add(&mut self, event: StoredEvent, next_scheduled: &mut u64) {
        let due = event
            .due_at()
            .ok()
            .flatten()
            .filter(|due| clock::is_future(*due));
        let queued = Queued {
            event,
            deliveries: 0,
        };
        match due {
            Some(due) => {
                *next_scheduled += 1;
                self.scheduled
                    .insert((clock::deadline(due), *next_scheduled), queued);
            }
            None => self.ready.push_back(queued),
        }
        // Also for a delayed one: a waiting dequeue wakes in time for it.
        self.arrived.notify_one();
    }

    /// Moves the delayed events and deferred deliveries due by `now` to
    /// the ready queue, in due order.
    fn release_due(&mut self, now: Instant) {
        for waiting in [&mut self.scheduled, &mut self.deferred] {
            while let Some(entry) = waiting.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                self.ready.push_back(entry.remove());
            }
        }
    }
}

impl MemoryStore {
    /// Stores an event again and queues it for this handle's group only
    /// (a replay).
    fn append_for_group(&self, event: StoredEvent) {
        let mut state = self.lock();
        let mut next_scheduled = state.next_scheduled;
        self.group_of(&mut state)
            .add(event.clone(), &mut next_scheduled);
        state.next_scheduled = next_scheduled;
        state.events.push(Stamped::now(event));
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
