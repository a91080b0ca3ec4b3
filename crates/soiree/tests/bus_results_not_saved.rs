//! A settling call that settled all but some deliveries — those whose
//! listener results could not be saved (`Error::ResultsNotSaved`, results
//! before ack) or whose leases were lost (`Error::LeasesLost`) — is done:
//! the bus does not call it again (a second call would settle nothing
//! more), while any other error is tried again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::{
    Delivery, Error, EventBus, EventQueue, EventStore, MemoryStore, Result, StoredEvent,
    StoredResult, async_trait,
};

const LIMIT: Duration = Duration::from_secs(20);

/// A `MemoryStore` queue whose `ack` acknowledges and then fails with
/// `error`, counting its calls.
#[derive(Debug)]
struct Failing {
    inner: MemoryStore,
    error: fn() -> Error,
    acks: AtomicUsize,
}

#[async_trait]
impl EventStore for Failing {
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
impl EventQueue for Failing {
    async fn enqueue(&self, event: &StoredEvent) -> Result<()> {
        EventQueue::enqueue(&self.inner, event).await
    }

    async fn dequeue(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        self.inner.dequeue(max, wait).await
    }

    async fn ack(&self, receipts: &[String]) -> Result<()> {
        self.acks.fetch_add(1, Ordering::SeqCst);
        self.inner.ack(receipts).await?;
        Err((self.error)())
    }

    async fn backlog(&self) -> Result<u64> {
        self.inner.backlog().await
    }
}

/// How many times the bus called `ack` for one delivery whose `ack`
/// always fails with `error`.
async fn ack_calls(error: fn() -> Error) -> usize {
    let store = Arc::new(Failing {
        inner: MemoryStore::queue(),
        error,
        acks: AtomicUsize::new(0),
    });
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .poll_wait(Duration::from_millis(20))
        .build()
        .unwrap();
    bus.on("job.run", |_ctx| async { Ok(()) }).unwrap();
    bus.start().unwrap();
    let mut emission = bus.emit("job.run", 1);
    emission.persisted().await.unwrap();
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .unwrap();
    // Close waits for the settling calls, retries included.
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
    store.acks.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_not_saved_is_not_tried_again() {
    let calls = ack_calls(|| Error::ResultsNotSaved { deliveries: 1 }).await;
    assert_eq!(calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_settling_error_is_tried_again() {
    let calls = ack_calls(|| Error::store("unreachable")).await;
    assert!(calls > 1, "{calls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_lost_is_not_tried_again() {
    let calls = ack_calls(|| Error::LeasesLost { deliveries: 1 }).await;
    assert_eq!(calls, 1);
}
