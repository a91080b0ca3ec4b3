//! At close the bus's consumer hands back to the queue what it took and will
//! not run (`EventQueue::release`), once, after it stopped dequeuing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use soiree::{
    Delivery, EventBus, EventQueue, EventStore, MemoryStore, Result, StoredEvent, StoredResult,
    async_trait,
};

/// A `MemoryStore` queue that records `release` calls and dequeues after them.
#[derive(Debug, Default)]
struct Recording {
    inner: MemoryStore,
    releases: Mutex<Vec<Vec<String>>>,
    dequeues_after_release: AtomicUsize,
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
        if !self.releases.lock().unwrap().is_empty() {
            self.dequeues_after_release.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.dequeue(max, wait).await
    }

    async fn ack(&self, receipts: &[String]) -> Result<()> {
        self.inner.ack(receipts).await
    }

    async fn release(&self, receipts: &[String]) -> Result<()> {
        self.releases.lock().unwrap().push(receipts.to_vec());
        Ok(())
    }

    async fn backlog(&self) -> Result<u64> {
        self.inner.backlog().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_releases_once_after_the_consumer_stopped() {
    let store = Arc::new(Recording {
        inner: MemoryStore::queue(),
        ..Recording::default()
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
    tokio::time::timeout(Duration::from_secs(20), bus.wait_for_idle())
        .await
        .unwrap();
    assert!(
        store.releases.lock().unwrap().is_empty(),
        "not while running"
    );
    tokio::time::timeout(Duration::from_secs(20), bus.close())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*store.releases.lock().unwrap(), vec![Vec::<String>::new()]);
    assert_eq!(store.dequeues_after_release.load(Ordering::SeqCst), 0);
}
