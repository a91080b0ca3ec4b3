//! A listener timeout cancels a hung listener: the listeners after it run,
//! it is not retried, and a queue store's delivery counts as failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use soiree::{Error, EventBus, MemoryStore, RetryPolicy};

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_listener_is_cancelled_and_the_next_one_runs() {
    let calls = Arc::new(AtomicUsize::new(0));
    let after = Arc::new(AtomicUsize::new(0));
    let bus = EventBus::builder()
        .listener_timeout(Duration::from_millis(50))
        .retry(RetryPolicy::attempts(3).unwrap())
        .build()
        .unwrap();
    let c = Arc::clone(&calls);
    bus.on_named("hung", "job.run", move |_ctx| {
        c.fetch_add(1, Ordering::SeqCst);
        async {
            std::future::pending::<()>().await;
            Ok(())
        }
    })
    .unwrap();
    let a = Arc::clone(&after);
    bus.on_named("next", "job.run", move |_ctx| {
        a.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    })
    .unwrap();
    let errors: Vec<Error> = tokio::time::timeout(LIMIT, bus.emit("job.run", ()).collect())
        .await
        .expect("the emission ends despite the hung listener");
    match errors.as_slice() {
        [
            Error::TimedOut {
                listener_id, after, ..
            },
        ] => {
            assert_eq!(listener_id.as_str(), "hung");
            assert_eq!(*after, Duration::from_millis(50));
        }
        other => panic!("expected one timeout, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a timeout is not retried");
    assert_eq!(after.load(Ordering::SeqCst), 1);
    bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_delivery_is_handed_to_fail() {
    let store = Arc::new(MemoryStore::queue());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .poll_wait(Duration::from_millis(20))
        .listener_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    bus.on("job.run", |_ctx| async {
        std::future::pending::<()>().await;
        Ok(())
    })
    .unwrap();
    bus.start().unwrap();
    let mut emission = bus.emit("job.run", ());
    emission.persisted().await.unwrap();
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .expect("idle in time");
    let dead = store.dead_letters();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].1.contains("timed out"), "{dead:?}");
    bus.close().await.unwrap();
}

#[test]
fn a_zero_timeout_is_rejected() {
    let err = EventBus::builder()
        .listener_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)));
}
