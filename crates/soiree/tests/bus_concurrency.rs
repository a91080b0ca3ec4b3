//! Concurrency: at most `workers` emissions run at once (and exactly that many
//! when there is work), emissions run concurrently, and the listeners of one
//! emission run one after another.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use soiree::{Error, EventBus};
use tokio::sync::{Barrier, Notify};

/// Counts the listeners running now and the most ever seen at once.
#[derive(Default)]
struct HighWater {
    running: AtomicUsize,
    max: AtomicUsize,
}

impl HighWater {
    fn enter(&self) {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

/// Emits `rounds × workers` events whose listener waits at a barrier of
/// `workers` parties: it only passes if `workers` emissions run at once, and
/// the high-water mark shows that no more ever do.
async fn high_water_mark(workers: usize, rounds: usize) -> usize {
    let bus = EventBus::builder().workers(workers).build().unwrap();
    let water = Arc::new(HighWater::default());
    let barrier = Arc::new(Barrier::new(workers));
    {
        let (water, barrier) = (Arc::clone(&water), Arc::clone(&barrier));
        bus.on("work", move |_ctx| {
            let (water, barrier) = (Arc::clone(&water), Arc::clone(&barrier));
            async move {
                water.enter();
                barrier.wait().await;
                // Linger so a surplus emission, if the pool let one start,
                // would overlap with this one.
                tokio::task::yield_now().await;
                water.leave();
                Ok(())
            }
        })
        .unwrap();
    }
    let emissions: Vec<_> = (0..workers * rounds)
        .map(|_| bus.emit("work", ()))
        .collect();
    let all = futures::future::join_all(emissions.into_iter().map(|e| e.collect::<Vec<Error>>()));
    let results = tokio::time::timeout(Duration::from_secs(20), all)
        .await
        .unwrap_or_else(|_| {
            panic!("with {workers} workers, {workers} emissions never ran at once")
        });
    assert!(results.iter().all(Vec::is_empty));
    water.max()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_workers_emissions_run_at_once() {
    for workers in [1, 2, 3, 5, 8] {
        assert_eq!(
            high_water_mark(workers, 4).await,
            workers,
            "workers({workers})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_is_ten_workers() {
    assert_eq!(EventBus::new().workers(), 10);
    assert_eq!(high_water_mark(10, 3).await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_listener_bounds_concurrency_too() {
    // Sleep instead of a barrier: emissions pile up behind the workers.
    let bus = EventBus::builder().workers(3).build().unwrap();
    let water = Arc::new(HighWater::default());
    {
        let water = Arc::clone(&water);
        bus.on("work", move |_ctx| {
            let water = Arc::clone(&water);
            async move {
                water.enter();
                tokio::time::sleep(Duration::from_millis(5)).await;
                water.leave();
                Ok(())
            }
        })
        .unwrap();
    }
    for _ in 0..30 {
        bus.emit("work", ()).detach();
    }
    tokio::time::timeout(Duration::from_secs(20), bus.wait_for_idle())
        .await
        .expect("idle");
    assert!(water.max() <= 3, "high-water mark {}", water.max());
    assert!(water.max() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resizing_the_bus_changes_the_limit() {
    let bus = EventBus::builder().workers(2).build().unwrap();
    assert!(matches!(bus.resize(0), Err(Error::InvalidConfig(_))));
    bus.resize(4).unwrap();
    assert_eq!(bus.workers(), 4);
    let water = Arc::new(HighWater::default());
    let barrier = Arc::new(Barrier::new(4));
    {
        let (water, barrier) = (Arc::clone(&water), Arc::clone(&barrier));
        bus.on("work", move |_ctx| {
            let (water, barrier) = (Arc::clone(&water), Arc::clone(&barrier));
            async move {
                water.enter();
                barrier.wait().await;
                water.leave();
                Ok(())
            }
        })
        .unwrap();
    }
    let emissions: Vec<_> = (0..8).map(|_| bus.emit("work", ())).collect();
    let all = futures::future::join_all(emissions.into_iter().map(|e| e.collect::<Vec<Error>>()));
    tokio::time::timeout(Duration::from_secs(20), all)
        .await
        .expect("four emissions ran at once after the resize");
    assert_eq!(water.max(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emissions_run_concurrently() {
    // The first emission's listener waits for the second emission's
    // listener: this only finishes if both emissions run at once.
    let bus = EventBus::builder().workers(2).build().unwrap();
    let signal = Arc::new(Notify::new());
    {
        let signal = Arc::clone(&signal);
        bus.on("waiter", move |_ctx| {
            let signal = Arc::clone(&signal);
            async move {
                signal.notified().await;
                Ok(())
            }
        })
        .unwrap();
    }
    {
        let signal = Arc::clone(&signal);
        bus.on("signaller", move |_ctx| {
            signal.notify_one();
            async { Ok(()) }
        })
        .unwrap();
    }
    let waiter = bus.emit("waiter", ());
    let signaller = bus.emit("signaller", ());
    let both = futures::future::join(waiter.collect::<Vec<_>>(), signaller.collect::<Vec<_>>());
    let (a, b) = tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("the emissions ran concurrently");
    assert!(a.is_empty() && b.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listeners_of_one_emission_run_one_after_another() {
    let bus = EventBus::builder().workers(4).build().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    // One counter per emission (keyed by payload), so that concurrent
    // emissions do not mix.
    let waters: Arc<Vec<HighWater>> = Arc::new((0..4).map(|_| HighWater::default()).collect());
    for n in 0..5 {
        let (order, waters) = (Arc::clone(&order), Arc::clone(&waters));
        bus.on("seq", move |ctx| {
            let (order, waters) = (Arc::clone(&order), Arc::clone(&waters));
            let emission = *ctx.payload_as::<usize>().expect("a usize payload");
            async move {
                waters[emission].enter();
                tokio::time::sleep(Duration::from_millis(2)).await;
                order.lock().unwrap().push((emission, n));
                waters[emission].leave();
                Ok(())
            }
        })
        .unwrap();
    }
    let emissions: Vec<_> = (0..4usize).map(|i| bus.emit("seq", i)).collect();
    let results =
        futures::future::join_all(emissions.into_iter().map(|e| e.collect::<Vec<_>>())).await;
    assert!(results.iter().all(Vec::is_empty));
    for (i, water) in waters.iter().enumerate() {
        assert_eq!(water.max(), 1, "emission {i} ran two listeners at once");
    }
    let order = order.lock().unwrap();
    for emission in 0..4 {
        let listeners: Vec<usize> = order
            .iter()
            .filter(|(e, _)| *e == emission)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(listeners, [0, 1, 2, 3, 4], "emission {emission}");
    }
}
