//! `EventContext::settles_delivery`: true only for the last listener of a
//! queue's delivery still to run, with no error before it — what a store's
//! transactional listener relies on to acknowledge in its own transaction.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use soiree::{EventBus, EventQueue, MemoryStore};

const LIMIT: Duration = Duration::from_secs(20);

type Seen = Arc<Mutex<Vec<(String, bool)>>>;

fn record(
    seen: &Seen,
    name: &'static str,
) -> impl Fn(soiree::EventContext) -> std::future::Ready<Result<(), soiree::BoxError>>
+ Send
+ Sync
+ 'static {
    let seen = Arc::clone(seen);
    move |ctx| {
        seen.lock()
            .unwrap()
            .push((format!("{name}:{}", ctx.topic()), ctx.settles_delivery()));
        std::future::ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_last_listener_of_a_delivery_with_no_error_before_it_settles() {
    let store = Arc::new(MemoryStore::queue());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .poll_wait(Duration::from_millis(20))
        .build()
        .unwrap();
    let seen: Seen = Arc::default();
    // Same pattern: registration order; `job.two` has two listeners.
    bus.on_named("first", "job.two", record(&seen, "first"))
        .unwrap();
    bus.on_named("second", "job.two", record(&seen, "second"))
        .unwrap();
    bus.on_named("only", "job.one", record(&seen, "only"))
        .unwrap();
    // A failing listener, then one after it: the second does not settle.
    bus.on_named("fails", "job.failed", |_ctx| async { Err("no".into()) })
        .unwrap();
    bus.on_named("after", "job.failed", record(&seen, "after"))
        .unwrap();
    // A listener removed after registration does not count as pending.
    bus.on_named("kept", "job.removed", record(&seen, "kept"))
        .unwrap();
    let gone = bus
        .on_named("gone", "job.removed", record(&seen, "gone"))
        .unwrap();
    bus.off("job.removed", &gone).unwrap();
    bus.start().unwrap();
    for topic in ["job.two", "job.one", "job.failed", "job.removed"] {
        bus.emit(topic, ()).persisted().await.unwrap();
    }
    tokio::time::timeout(LIMIT, async {
        while store.backlog().await.unwrap() > 0 || seen.lock().unwrap().len() < 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("settled in time");
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .expect("idle");
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("after:job.failed".to_owned(), false),
            ("first:job.two".to_owned(), false),
            ("kept:job.removed".to_owned(), true),
            ("only:job.one".to_owned(), true),
            ("second:job.two".to_owned(), true),
        ]
    );
    bus.close().await.unwrap();
}

#[tokio::test]
async fn listeners_run_in_place_of_an_emit_never_settle() {
    let bus = EventBus::new();
    let seen: Seen = Arc::default();
    bus.on("job.one", record(&seen, "only")).unwrap();
    let errors: Vec<_> = futures::StreamExt::collect(bus.emit("job.one", ())).await;
    assert!(errors.is_empty());
    assert_eq!(*seen.lock().unwrap(), [("only:job.one".to_owned(), false)]);
}
