//! The bus's consumer reads ahead for a queue that asks for it
//! (`EventQueue::read_ahead`): it takes more than its free workers, keeps
//! the leases of what it holds with the running ones (`extend`), hands it
//! back at close (`release`), reads about a quarter of the lease's worth at
//! the rate it took its last batch (up to the hint), and reads nothing
//! ahead after its workers were all busy for a quarter of the lease.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use soiree::{
    Delivery, EventBus, EventQueue, EventStore, MemoryStore, Result, StoredEvent, StoredResult,
    async_trait,
};
use tokio::sync::Semaphore;

const LEASE_INTERVAL: Duration = Duration::from_millis(200);
const BOUND: Duration = Duration::from_secs(20);

/// A `MemoryStore` queue with a read-ahead hint that records what the bus
/// asks of it.
#[derive(Debug)]
struct Recording {
    inner: MemoryStore,
    read_ahead: usize,
    lease_interval: Option<Duration>,
    /// `max` of each dequeue.
    asks: Mutex<Vec<usize>>,
    /// Receipts returned by dequeue, in order.
    taken: Mutex<Vec<String>>,
    extends: Mutex<Vec<Vec<String>>>,
    releases: Mutex<Vec<Vec<String>>>,
}

impl Recording {
    fn new(read_ahead: usize, lease_interval: Option<Duration>) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::queue(),
            read_ahead,
            lease_interval,
            asks: Mutex::default(),
            taken: Mutex::default(),
            extends: Mutex::default(),
            releases: Mutex::default(),
        })
    }

    fn asks(&self) -> Vec<usize> {
        self.asks.lock().unwrap().clone()
    }
}

#[async_trait]
impl EventStore for Recording {
    async fn save_event(&self, event: &StoredEvent) -> Result<()> {
        EventQueue::enqueue(&self.inner, event).await
    }

    async fn save_handler_result(&self, result: &StoredResult) -> Result<()> {
        self.inner.save_handler_result(result).await
    }

    fn queue(&self) -> Option<&dyn EventQueue> {
        Some(self)
    }
}

#[async_trait]
impl EventQueue for Recording {
    async fn enqueue(&self, event: &StoredEvent) -> Result<()> {
        EventQueue::enqueue(&self.inner, event).await
    }

    async fn dequeue(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        self.asks.lock().unwrap().push(max);
        let deliveries = self.inner.dequeue(max, wait).await?;
        self.taken
            .lock()
            .unwrap()
            .extend(deliveries.iter().map(|d| d.receipt.clone()));
        Ok(deliveries)
    }

    async fn ack(&self, receipts: &[String]) -> Result<()> {
        self.inner.ack(receipts).await
    }

    async fn release(&self, receipts: &[String]) -> Result<()> {
        self.releases.lock().unwrap().push(receipts.to_vec());
        Ok(())
    }

    fn read_ahead(&self) -> usize {
        self.read_ahead
    }

    fn lease_interval(&self) -> Option<Duration> {
        self.lease_interval
    }

    async fn extend(&self, receipts: &[String]) -> Result<()> {
        self.extends.lock().unwrap().push(receipts.to_vec());
        Ok(())
    }

    async fn backlog(&self) -> Result<u64> {
        self.inner.backlog().await
    }
}

/// Polls `done` every 5 ms until it holds, for at most [`BOUND`].
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(BOUND, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

/// A bus on `store` whose listener on `job.run` counts its runs, then takes
/// `each` and waits for a permit of `gate`.
fn bus_on(
    store: &Arc<Recording>,
    workers: usize,
    each: Duration,
) -> (EventBus, Arc<AtomicUsize>, Arc<Semaphore>) {
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .workers(workers)
        .poll_wait(Duration::from_millis(20))
        .build()
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (count, wait) = (started.clone(), gate.clone());
    bus.on("job.run", move |_ctx| {
        let (count, wait) = (count.clone(), wait.clone());
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(each).await;
            wait.acquire().await.unwrap().forget();
            Ok(())
        }
    })
    .unwrap();
    (bus, started, gate)
}

async fn emit(bus: &EventBus, n: usize) {
    for i in 0..n {
        let mut emission = bus.emit("job.run", i);
        emission.persisted().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_reads_ahead_keeps_what_it_holds_and_hands_it_back_at_close() {
    let store = Recording::new(8, Some(LEASE_INTERVAL));
    let (bus, started, gate) = bus_on(&store, 2, Duration::ZERO);
    emit(&bus, 10).await;
    bus.start().unwrap();
    until("both workers run", || started.load(Ordering::SeqCst) == 2).await;

    assert_eq!(store.asks().first(), Some(&8), "max(2 free workers, 8)");
    let taken = store.taken.lock().unwrap().clone();
    assert_eq!(taken.len(), 8);
    let all: BTreeSet<&String> = taken.iter().collect();
    until(
        "one extend keeps the held deliveries and the running ones",
        || {
            store
                .extends
                .lock()
                .unwrap()
                .iter()
                .any(|receipts| receipts.iter().collect::<BTreeSet<_>>() == all)
        },
    )
    .await;
    assert_eq!(
        store.asks().len(),
        1,
        "no dequeue while it holds deliveries"
    );

    let closing = tokio::spawn({
        let bus = bus.clone();
        async move { bus.close().await }
    });
    until("the held deliveries are handed back", || {
        !store.releases.lock().unwrap().is_empty()
    })
    .await;
    // The two running ones were the first taken: delivered in order.
    assert_eq!(*store.releases.lock().unwrap(), vec![taken[2..].to_vec()]);
    gate.add_permits(100);
    tokio::time::timeout(BOUND, closing)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        started.load(Ordering::SeqCst),
        2,
        "held deliveries never ran"
    );
    assert_eq!(store.releases.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_slow_return_the_consumer_asks_for_its_free_workers_only() {
    let store = Recording::new(4, Some(LEASE_INTERVAL));
    let (bus, started, gate) = bus_on(&store, 1, Duration::ZERO);
    emit(&bus, 1).await;
    bus.start().unwrap();
    until("the listener runs", || started.load(Ordering::SeqCst) == 1).await;
    // The one worker stays busy for more than a quarter of the lease
    // (three quarters of the interval).
    tokio::time::sleep(LEASE_INTERVAL * 2).await;
    assert_eq!(store.asks(), [4], "read ahead while the bus keeps asking");
    gate.add_permits(100);
    until("it asks twice more", || store.asks().len() >= 3).await;
    let asks = store.asks();
    assert_eq!(asks[1], 1, "nothing ahead after a slow return: {asks:?}");
    assert_eq!(asks[2], 4, "ahead again once it keeps asking: {asks:?}");
    tokio::time::timeout(BOUND, bus.close())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_lease_interval_the_hint_is_ignored() {
    let store = Recording::new(8, None);
    let (bus, started, gate) = bus_on(&store, 2, Duration::ZERO);
    emit(&bus, 10).await;
    bus.start().unwrap();
    until("both workers run", || started.load(Ordering::SeqCst) == 2).await;
    assert_eq!(store.asks().first(), Some(&2));
    assert_eq!(store.taken.lock().unwrap().len(), 2);
    gate.add_permits(100);
    tokio::time::timeout(BOUND, bus.wait_for_idle())
        .await
        .unwrap();
    tokio::time::timeout(BOUND, bus.close())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started.load(Ordering::SeqCst), 10);
}

/// The `max` of the bus's first two dequeues on `store` with `workers`,
/// `events` queued before it starts and listeners that take `each`: the
/// second comes once the first batch is run.
async fn first_two_asks(
    store: &Arc<Recording>,
    workers: usize,
    events: usize,
    each: Duration,
) -> [usize; 2] {
    let (bus, started, gate) = bus_on(store, workers, each);
    gate.add_permits(events);
    emit(&bus, events).await;
    bus.start().unwrap();
    until("every event started", || {
        started.load(Ordering::SeqCst) == events
    })
    .await;
    until("it asked again", || store.asks().len() >= 2).await;
    tokio::time::timeout(BOUND, bus.close())
        .await
        .unwrap()
        .unwrap();
    let asks = store.asks();
    assert_eq!(store.taken.lock().unwrap().len(), events, "{asks:?}");
    [asks[0], asks[1]]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_bus_reads_ahead_beyond_its_free_workers_up_to_the_hint() {
    let store = Recording::new(50, Some(LEASE_INTERVAL));
    let asks = first_two_asks(&store, 2, 40, Duration::ZERO).await;
    assert_eq!(asks[0], 32, "nothing measured yet: a first read of 32");
    // 40 run within a few seconds: more than 2 in a quarter of the lease
    // (150 ms).
    assert!(asks[1] > 2, "more than the free workers: {asks:?}");
    assert!(asks[1] <= 50, "never above the hint: {asks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_listeners_shrink_the_read_ahead_to_a_quarter_of_the_lease() {
    // A quarter of the lease is 300 ms; each listener takes 100 ms, so the
    // one worker is never busy that long with one delivery.
    let store = Recording::new(1000, Some(Duration::from_millis(400)));
    let asks = first_two_asks(&store, 1, 4, Duration::from_millis(100)).await;
    assert_eq!(asks[0], 32, "nothing measured yet: a first read of 32");
    // 4 run in at least 400 ms: at most 3 in 300 ms.
    assert!(
        (1..=3).contains(&asks[1]),
        "what it runs in a quarter of the lease: {asks:?}"
    );
}
