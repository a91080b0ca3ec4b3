//! `close` waits for a hung queue's acknowledgements for at most the
//! queue's close timeout after the last listener finished; what is left is
//! abandoned (and stays pending, to be delivered again).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::{
    Delivery, EventBus, EventQueue, EventStore, MemoryStore, Result, StoredEvent, StoredResult,
    async_trait,
};

/// A bound far above the close timeout: `close` must return before it.
const LIMIT: Duration = Duration::from_secs(20);

/// A `MemoryStore` queue whose `ack` never answers (a hung server).
#[derive(Debug, Default)]
struct HungAcks {
    inner: MemoryStore,
    acks_started: AtomicUsize,
}

#[async_trait]
impl EventStore for HungAcks {
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
impl EventQueue for HungAcks {
    async fn enqueue(&self, event: &StoredEvent) -> Result<()> {
        EventQueue::enqueue(&self.inner, event).await
    }

    async fn dequeue(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        self.inner.dequeue(max, wait).await
    }

    async fn ack(&self, _receipts: &[String]) -> Result<()> {
        self.acks_started.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }

    fn close_timeout(&self) -> Duration {
        Duration::from_millis(300)
    }

    async fn backlog(&self) -> Result<u64> {
        self.inner.backlog().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_abandons_acknowledgements_a_hung_queue_never_answers() {
    let store = Arc::new(HungAcks::default());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .poll_wait(Duration::from_millis(20))
        .build()
        .unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&handled);
    bus.on("job.run", move |_ctx| {
        h.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    })
    .unwrap();
    bus.start().unwrap();
    for i in 0..3 {
        let mut emission = bus.emit("job.run", i);
        tokio::time::timeout(LIMIT, emission.persisted())
            .await
            .unwrap()
            .unwrap();
    }
    let ran = async {
        while handled.load(Ordering::SeqCst) < 3 || store.acks_started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(LIMIT, ran)
        .await
        .expect("the listeners ran");
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .expect("close returns although the acknowledgement never answers")
        .unwrap();
    // Nothing was acknowledged: every event is still due for delivery.
    assert_eq!(store.inner.backlog().await.unwrap(), 3);
}
