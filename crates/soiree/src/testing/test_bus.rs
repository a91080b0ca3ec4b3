//! A bus for application tests: in-memory store, run to idle, paused clock.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::{
    Error, EventBus, EventBusBuilder, EventStore, MemoryStore, Result, StoredEvent, StoredResult,
};

/// The most rounds [`TestBus::run_until_idle`] waits for work that makes
/// more work (a listener emitting, a delayed event coming due).
const MAX_ROUNDS: usize = 10_000;

/// An [`EventBus`] over a [`MemoryStore`] for application tests (River's
/// `rivertest`, apalis' `TestWorker`): run it until idle, move a paused
/// clock to drive delayed events, retries and snoozes, and assert on what
/// was emitted, handled and dead-lettered.
///
/// The store persists every event and listener result and the bus
/// dispatches in process (`MemoryStore::new()`), so an emission's listeners
/// have run once [`run_until_idle`](Self::run_until_idle) returns.
/// [`dead_letters`](Self::dead_letters) are the events whose listener
/// still failed after its retries — what a queue store dead-letters.
///
/// Time: under a paused tokio clock (`start_paused = true`, which needs
/// tokio's `test-util` feature in the test's dev-dependencies), time moves
/// only when every task waits for a timer, and then straight to the next
/// timer. [`advance`](Self::advance) moves it by a given amount, running
/// everything that comes due on the way in due order;
/// [`run_until_idle`](Self::run_until_idle) lets it move only as far as the
/// work in flight needs (a retry's backoff, a snooze), never to a delayed
/// event not yet due that nothing waits for. Without a paused clock both
/// work in real time.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use soiree::testing::TestBus;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> soiree::Result<()> {
/// let test = TestBus::new()?;
/// test.bus().on_named("send-reminder", "invoice.remind", |_ctx| async { Ok(()) })?;
/// test.bus().on_named("charge", "invoice.charge", |_ctx| async { Err("card declined".into()) })?;
///
/// test.bus().emit_after("invoice.remind", 42, Duration::from_secs(86_400)).detach();
/// test.bus().emit("invoice.charge", 42).detach();
/// test.run_until_idle().await;
/// assert_eq!(test.emitted_on("invoice.remind").len(), 1, "stored at once");
/// assert!(test.handled("send-reminder").is_empty(), "not due yet");
/// assert_eq!(test.dead_letters().len(), 1);
/// assert!(test.dead_letters()[0].1.contains("card declined"));
///
/// test.advance(Duration::from_secs(86_399)).await;
/// assert!(test.handled("send-reminder").is_empty(), "never early");
/// test.advance(Duration::from_secs(1)).await;
/// assert_eq!(test.handled("send-reminder").len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TestBus {
    bus: EventBus,
    store: Arc<MemoryStore>,
    failed: Arc<Mutex<Vec<(StoredEvent, String)>>>,
}

impl TestBus {
    /// A bus with the default options over a fresh [`MemoryStore`].
    ///
    /// # Errors
    ///
    /// As [`EventBusBuilder::build`].
    pub fn new() -> Result<Self> {
        Self::from_builder(EventBus::builder())
    }

    /// A bus from `builder` (retries, workers, timeouts, …) over a fresh
    /// [`MemoryStore`]. The builder's store and error handler are
    /// replaced: the test bus records final listener errors as dead
    /// letters, then passes them on unchanged.
    ///
    /// # Errors
    ///
    /// As [`EventBusBuilder::build`].
    pub fn from_builder(builder: EventBusBuilder) -> Result<Self> {
        let store = Arc::new(MemoryStore::new());
        let failed: Arc<Mutex<Vec<(StoredEvent, String)>>> = Arc::default();
        let record = Arc::clone(&failed);
        let bus = builder
            .shared_store(Arc::clone(&store) as Arc<dyn EventStore>)
            .error_handler(move |event, error| {
                if matches!(
                    error,
                    Error::Listener { .. } | Error::Panicked { .. } | Error::TimedOut { .. }
                ) && let Ok(stored) = StoredEvent::from_event(event)
                {
                    lock(&record).push((stored, error.to_string()));
                }
                Some(error)
            })
            .build()?;
        Ok(Self { bus, store, failed })
    }

    /// The bus: register listeners and emit on it.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// The store: every event and result.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// Now, on the clock of due times (the system clock moved by a paused
    /// tokio clock): build absolute due times from it in tests, as
    /// `SystemTime::now()` does not move with a paused clock.
    pub fn now(&self) -> SystemTime {
        crate::schedule::clock::now()
    }

    /// Waits until every emission made so far, and every one they made or
    /// that came due meanwhile, has run its listeners. Delayed events not
    /// yet due stay waiting (see [`advance`](Self::advance)).
    ///
    /// # Panics
    ///
    /// When work keeps making work for 10,000 rounds (a listener that
    /// emits to itself forever).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only observes the bus.
    pub async fn run_until_idle(&self) {
        for _ in 0..MAX_ROUNDS {
            // Timers that fired run first, and count as work.
            tokio::task::yield_now().await;
            self.bus.wait_for_idle().await;
            tokio::task::yield_now().await;
            if self.bus.pending_work() == 0 {
                return;
            }
        }
        panic!(
            "the test bus was still busy after {MAX_ROUNDS} rounds: does a listener emit forever?"
        );
    }

    /// Lets `by` pass (on a paused clock: at once, running everything that
    /// comes due on the way, in due order), then runs until idle.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
        self.run_until_idle().await;
    }

    /// Every event stored, oldest first (delayed ones as soon as emitted).
    pub fn emitted(&self) -> Vec<StoredEvent> {
        self.store.events()
    }

    /// The events stored on `topic`, oldest first.
    pub fn emitted_on(&self, topic: &str) -> Vec<StoredEvent> {
        self.store
            .events()
            .into_iter()
            .filter(|event| event.topic == topic)
            .collect()
    }

    /// The ids of the events `listener` handled successfully, in order:
    /// name listeners with [`EventBus::on_named`] to ask by name.
    pub fn handled(&self, listener: &str) -> Vec<String> {
        self.store
            .results()
            .into_iter()
            .filter(|result| result.handler_id == listener && result.succeeded())
            .map(|result| result.event_id)
            .collect()
    }

    /// Every listener result stored (each attempt and snooze), oldest first.
    pub fn results(&self) -> Vec<StoredResult> {
        self.store.results()
    }

    /// The events whose listener failed for good (after its retries, a
    /// panic, a timeout), each with the error: what a queue store would
    /// dead-letter. Oldest first.
    pub fn dead_letters(&self) -> Vec<(StoredEvent, String)> {
        lock(&self.failed).clone()
    }

    /// The delayed events waiting (event id, topic, due time), soonest first.
    pub fn scheduled(&self) -> Vec<(String, String, SystemTime)> {
        self.bus.scheduled()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
