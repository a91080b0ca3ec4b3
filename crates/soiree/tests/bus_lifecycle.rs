//! A bus's life: building, cloning, `wait_for_idle`, `close`.
//! (`shutdown_all` closes every bus of the process, so it has its own test
//! binary: `bus_shutdown.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use soiree::{Error, EventBus};
use tokio::sync::Semaphore;

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

#[test]
fn a_bus_is_send_sync_and_clone() {
    assert_send_sync_clone::<EventBus>();
    assert_send_sync_clone::<soiree::Pool>();
}

#[test]
fn the_builder_rejects_zero_workers() {
    assert!(matches!(
        EventBus::builder().workers(0).build(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        EventBus::builder().poll_wait(Duration::ZERO).build(),
        Err(Error::InvalidConfig(_))
    ));
    assert_eq!(EventBus::builder().workers(3).build().unwrap().workers(), 3);
}

#[tokio::test]
async fn clones_share_listeners_and_state() {
    let bus = EventBus::new();
    let clone = bus.clone();
    let ran = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&ran);
    clone
        .on("a", move |_ctx| {
            count.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .unwrap();
    assert!(bus.interested_in("a"));
    let errors: Vec<Error> = bus.emit("a", ()).collect().await;
    assert!(errors.is_empty());
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    clone.close().await.unwrap();
    assert!(bus.is_closed());
}

/// A bus whose "slow" listener waits for a permit from the test.
fn gated_bus(gate: &Arc<Semaphore>, done: &Arc<AtomicUsize>) -> EventBus {
    let bus = EventBus::builder().workers(4).build().unwrap();
    let (gate, done) = (Arc::clone(gate), Arc::clone(done));
    bus.on("slow", move |_ctx| {
        let (gate, done) = (Arc::clone(&gate), Arc::clone(&done));
        async move {
            gate.acquire().await.expect("gate open").forget();
            done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .unwrap();
    bus
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_idle_waits_for_every_emission() {
    let gate = Arc::new(Semaphore::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let bus = gated_bus(&gate, &done);
    // Idle at once with nothing to do.
    tokio::time::timeout(Duration::from_secs(5), bus.wait_for_idle())
        .await
        .expect("an unused bus is idle");

    for _ in 0..10 {
        bus.emit("slow", ()).detach();
    }
    // Not idle while listeners wait.
    let early = tokio::time::timeout(Duration::from_millis(50), bus.wait_for_idle()).await;
    assert!(
        early.is_err(),
        "wait_for_idle returned while listeners were blocked"
    );
    assert_eq!(done.load(Ordering::SeqCst), 0);

    gate.add_permits(10);
    tokio::time::timeout(Duration::from_secs(10), bus.wait_for_idle())
        .await
        .expect("idle after the listeners finished");
    assert_eq!(done.load(Ordering::SeqCst), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_finishes_running_work_and_refuses_new_work() {
    let gate = Arc::new(Semaphore::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let bus = gated_bus(&gate, &done);
    let emissions: Vec<_> = (0..6).map(|_| bus.emit("slow", ())).collect();

    let closing = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.close().await })
    };
    // Closing takes effect at once, before the running work has finished.
    tokio::time::timeout(Duration::from_secs(5), async {
        while !bus.is_closed() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("closed");
    let errors: Vec<Error> = bus.emit("slow", ()).collect().await;
    assert!(matches!(errors.as_slice(), [Error::Closed]), "{errors:?}");
    assert!(matches!(
        bus.on("other", |_ctx| async { Ok(()) }),
        Err(Error::Closed)
    ));

    gate.add_permits(6);
    let closed = tokio::time::timeout(Duration::from_secs(10), closing)
        .await
        .expect("close returned")
        .expect("close did not panic");
    assert!(closed.is_ok(), "{closed:?}");
    // close waited for the emissions under way; they all ran.
    assert_eq!(done.load(Ordering::SeqCst), 6);
    for emission in emissions {
        assert!(emission.is_finished());
        assert!(emission.collect::<Vec<_>>().await.is_empty());
    }

    assert!(matches!(bus.close().await, Err(Error::AlreadyClosed)));
    assert!(matches!(
        bus.clone().close().await,
        Err(Error::AlreadyClosed)
    ));
    assert!(bus.is_closed());
    // Idle and still usable for queries.
    tokio::time::timeout(Duration::from_secs(5), bus.wait_for_idle())
        .await
        .expect("a closed bus is idle");
    assert!(bus.interested_in("slow"));
}
