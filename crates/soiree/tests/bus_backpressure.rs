//! A bounded queue: the non-waiting emit refuses with `QueueFull` (counted),
//! the waiting emit waits for room, and a listener that emits or awaits its
//! own bus never deadlocks, whatever the worker count.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use soiree::{Error, EventBus, MetricsRegistry};
use tokio::sync::Semaphore;

const LIMIT: Duration = Duration::from_secs(20);

/// A bus whose `slow` listener waits for a permit of `gate` per event.
fn gated_bus(
    workers: usize,
    capacity: usize,
    registry: &MetricsRegistry,
) -> (EventBus, Arc<Semaphore>, Arc<AtomicUsize>) {
    let bus = EventBus::builder()
        .workers(workers)
        .queue_capacity(capacity)
        .metrics_registry(registry.clone())
        .pool_name("gated")
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let (g, r) = (Arc::clone(&gate), Arc::clone(&ran));
    bus.on("slow", move |_ctx| {
        let (gate, ran) = (Arc::clone(&g), Arc::clone(&r));
        async move {
            gate.acquire().await.unwrap().forget();
            ran.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .unwrap();
    (bus, gate, ran)
}

fn metric(registry: &MetricsRegistry, name: &str) -> u64 {
    let text = registry.encode();
    text.lines()
        .find(|line| line.starts_with(name) && line.contains("pool=\"gated\""))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_with_queue_full_and_counts_it() {
    let registry = MetricsRegistry::new();
    let (bus, gate, ran) = gated_bus(1, 2, &registry);
    let mut emissions = Vec::new();
    for i in 0..10 {
        emissions.push(bus.emit("slow", i));
    }
    let mut refused = 0;
    let mut accepted = Vec::new();
    for mut emission in emissions {
        if emission.is_finished() {
            let errors: Vec<Error> = emission.by_ref().collect().await;
            assert!(
                matches!(errors.as_slice(), [Error::QueueFull]),
                "{errors:?}"
            );
            refused += 1;
        } else {
            accepted.push(emission);
        }
    }
    // One job may be running, two queued: the rest was refused, loudly.
    assert!(refused >= 7, "refused {refused} of 10");
    assert_eq!(refused + accepted.len(), 10);
    assert_eq!(
        metric(&registry, "soiree_pool_tasks_rejected_total"),
        refused as u64
    );
    gate.add_permits(10);
    for emission in accepted {
        let errors: Vec<Error> = tokio::time::timeout(LIMIT, emission.collect())
            .await
            .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
    }
    assert_eq!(ran.load(Ordering::SeqCst), 10 - refused);
    bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_async_waits_for_room_and_loses_nothing() {
    let registry = MetricsRegistry::new();
    let (bus, gate, ran) = gated_bus(1, 2, &registry);
    // Fill the worker and the queue.
    let mut filled = 0;
    while !bus.emit("slow", filled).is_finished() {
        filled += 1;
        assert!(filled < 10, "a queue of two takes at most three events");
    }
    let waiting = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                bus.emit_async("slow", i).await.detach();
            }
        })
    };
    // The producer cannot finish while the listener holds every place.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "emit_async must wait for room");
    assert_eq!(metric(&registry, "soiree_pool_tasks_rejected_total"), 1);
    gate.add_permits(1_000);
    tokio::time::timeout(LIMIT, waiting).await.unwrap().unwrap();
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), filled + 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_emitting_into_a_full_queue_does_not_deadlock() {
    let bus = EventBus::builder()
        .workers(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let inner = Arc::new(AtomicUsize::new(0));
    let i = Arc::clone(&inner);
    bus.on("inner", move |_ctx| {
        i.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    })
    .unwrap();
    bus.on("outer", |ctx| async move {
        let bus = ctx.bus();
        for n in 0..50 {
            bus.emit_async("inner", n).await.detach();
        }
        Ok(())
    })
    .unwrap();
    let outer: Vec<_> = (0..3).map(|n| bus.emit_async("outer", n)).collect();
    for emission in outer {
        let errors: Vec<Error> =
            tokio::time::timeout(LIMIT, async { emission.await.collect().await })
                .await
                .expect("no deadlock");
        assert!(errors.is_empty(), "{errors:?}");
    }
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inner.load(Ordering::SeqCst), 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_s_plain_emit_into_a_full_queue_yields_queue_full() {
    // Only `emit_async` runs the work inline; `emit` never waits nor runs it.
    let bus = EventBus::builder()
        .workers(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    bus.on("inner", |_ctx| async { Ok(()) }).unwrap();
    bus.on("outer", |ctx| async move {
        let bus = ctx.bus();
        let mut refused = 0;
        for n in 0..5 {
            let mut emission = bus.emit("inner", n);
            if let Err(Error::QueueFull) = emission.persisted().await {
                refused += 1;
            } else {
                emission.detach();
            }
        }
        // One worker (this one) and a queue of one: the first is queued,
        // the rest refused.
        assert_eq!(refused, 4);
        Ok(())
    })
    .unwrap();
    let errors: Vec<Error> = tokio::time::timeout(LIMIT, bus.emit("outer", ()).collect())
        .await
        .expect("no deadlock");
    assert!(errors.is_empty(), "{errors:?}");
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}

async fn nested_awaits(workers: usize) {
    let bus = EventBus::builder().workers(workers).build().unwrap();
    let inner = Arc::new(AtomicUsize::new(0));
    let i = Arc::clone(&inner);
    bus.on("inner", move |_ctx| {
        i.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    })
    .unwrap();
    bus.on("outer", |ctx| async move {
        let errors: Vec<Error> = ctx.bus().emit("inner", ()).collect().await;
        assert!(errors.is_empty());
        Ok(())
    })
    .unwrap();
    let outer: Vec<_> = (0..20).map(|n| bus.emit("outer", n)).collect();
    for emission in outer {
        let errors: Vec<Error> = tokio::time::timeout(LIMIT, emission.collect())
            .await
            .expect("a listener awaiting its own bus does not deadlock");
        assert!(errors.is_empty(), "{errors:?}");
    }
    assert_eq!(inner.load(Ordering::SeqCst), 20);
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_listeners_awaiting_their_own_bus_on_ten_workers_finish() {
    nested_awaits(10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_awaiting_their_own_bus_on_one_worker_finish() {
    nested_awaits(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_idle_waits_only_for_emissions_made_before_it() {
    let bus = EventBus::builder().workers(2).build().unwrap();
    let first = Arc::new(Semaphore::new(0));
    let later = Arc::new(Semaphore::new(0));
    let (f, l) = (Arc::clone(&first), Arc::clone(&later));
    bus.on("first", move |_ctx| {
        let f = Arc::clone(&f);
        async move {
            f.acquire().await.unwrap().forget();
            Ok(())
        }
    })
    .unwrap();
    bus.on("later", move |_ctx| {
        let l = Arc::clone(&l);
        async move {
            l.acquire().await.unwrap().forget();
            Ok(())
        }
    })
    .unwrap();
    let before = bus.emit("first", ());
    let waiter = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.wait_for_idle().await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !waiter.is_finished(),
        "an earlier emission is still running"
    );
    // Made after the call, and never finishing until the end of the test.
    let after = bus.emit("later", ());
    first.add_permits(1);
    tokio::time::timeout(LIMIT, waiter)
        .await
        .expect("wait_for_idle does not wait for later emissions")
        .unwrap();
    assert!(before.is_finished());
    assert!(!after.is_finished());
    later.add_permits(1);
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
    assert!(after.is_finished());
}
