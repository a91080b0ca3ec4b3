//! `resize` reaches every consumer of the bus: the pool's workers and the
//! queue store's consumer, which takes at most that many deliveries at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::{EventBus, MemoryStore};
use tokio::sync::Semaphore;

const LIMIT: Duration = Duration::from_secs(20);

struct Gauge {
    running: AtomicUsize,
    most: AtomicUsize,
    done: AtomicUsize,
}

async fn until(mut check: impl FnMut() -> bool) {
    tokio::time::timeout(LIMIT, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("reached in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_reaches_the_queue_consumer() {
    let bus = EventBus::builder()
        .store(MemoryStore::queue())
        .workers(1)
        .poll_wait(Duration::from_millis(20))
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let gauge = Arc::new(Gauge {
        running: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
    });
    let (g, m) = (Arc::clone(&gate), Arc::clone(&gauge));
    bus.on("job.run", move |_ctx| {
        let (gate, gauge) = (Arc::clone(&g), Arc::clone(&m));
        async move {
            let now = gauge.running.fetch_add(1, Ordering::SeqCst) + 1;
            gauge.most.fetch_max(now, Ordering::SeqCst);
            gate.acquire().await.unwrap().forget();
            gauge.running.fetch_sub(1, Ordering::SeqCst);
            gauge.done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();
    for i in 0..12 {
        bus.emit_async("job.run", i).await.detach();
    }
    until(|| gauge.running.load(Ordering::SeqCst) == 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        gauge.most.load(Ordering::SeqCst),
        1,
        "one worker: one delivery"
    );

    bus.resize(4).unwrap();
    until(|| gauge.running.load(Ordering::SeqCst) == 4).await;

    // Shrinking takes effect as running deliveries finish.
    bus.resize(2).unwrap();
    gate.add_permits(4);
    until(|| gauge.done.load(Ordering::SeqCst) == 4).await;
    until(|| gauge.running.load(Ordering::SeqCst) == 2).await;
    gauge.most.store(2, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        gauge.most.load(Ordering::SeqCst),
        2,
        "at most two after the shrink"
    );

    gate.add_permits(100);
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .unwrap();
    assert_eq!(gauge.done.load(Ordering::SeqCst), 12);
    bus.close().await.unwrap();
}
