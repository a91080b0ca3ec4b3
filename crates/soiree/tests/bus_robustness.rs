//! Robustness: re-entrant calls from listeners, panicking handlers, duplicate
//! ids, interrupted retries, runtimes that go away, odd ids and payloads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use soiree::{
    Backoff, Error, Event, EventBus, ListenerBinding, MemoryStore, MetricsRegistry,
    PROPERTY_EVENT_ID, Pool, PoolOptions, RetryPolicy, StoredEvent, bind_listener,
};

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_can_wait_for_idle_and_close_its_own_bus() {
    let bus = EventBus::new();
    bus.on("shutdown.requested", |ctx| async move {
        let bus = ctx.bus();
        bus.wait_for_idle().await;
        bus.close().await?;
        Ok(())
    })
    .unwrap();
    let errors: Vec<Error> =
        tokio::time::timeout(LIMIT, bus.emit("shutdown.requested", ()).collect())
            .await
            .expect("no deadlock");
    assert!(errors.is_empty(), "{errors:?}");
    assert!(bus.is_closed());
    assert!(matches!(bus.close().await, Err(Error::AlreadyClosed)));
}

#[tokio::test]
async fn duplicate_listener_ids_are_rejected() {
    let bus = EventBus::new();
    bus.on_named("audit", "user.*", |_ctx| async { Ok(()) })
        .unwrap();
    let err = bus
        .on_named("audit", "order.*", |_ctx| async { Ok(()) })
        .unwrap_err();
    assert!(
        matches!(err, Error::DuplicateListener(ref id) if id == "audit"),
        "{err}"
    );
    assert_eq!(bus.listeners().len(), 1);
}

#[tokio::test]
async fn a_failed_batch_keeps_listeners_registered_before_it() {
    let bus = EventBus::new();
    let kept = bus
        .on_named("audit", "user.*", |_ctx| async { Ok(()) })
        .unwrap();
    let err = bus
        .register_listeners([
            ListenerBinding::new("user.*", |_ctx| async { Ok(()) }).named("fresh"),
            ListenerBinding::new("user.*", |_ctx| async { Ok(()) }).named("audit"),
        ])
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateListener(_)));
    // The batch is undone by identity: the earlier "audit" stays, "fresh" goes.
    assert_eq!(bus.listeners(), [("user.*".to_owned(), vec![kept])]);
}

#[tokio::test]
async fn a_panicking_error_handler_loses_no_error() {
    let bus = EventBus::builder()
        .error_handler(|_event, _err| panic!("handler bug"))
        .build()
        .unwrap();
    bus.on("job.run", |_ctx| async { Err("disk full".into()) })
        .unwrap();
    let ran_after = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&ran_after);
    bus.on("job.*", move |_ctx| {
        count.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    })
    .unwrap();
    let errors: Vec<Error> = bus.emit("job.run", ()).collect().await;
    assert_eq!(errors.len(), 1);
    let text = errors[0].to_string();
    assert!(matches!(errors[0], Error::Panicked { .. }), "{text}");
    assert!(
        text.contains("handler bug") && text.contains("disk full"),
        "{text}"
    );
    assert_eq!(
        ran_after.load(Ordering::SeqCst),
        1,
        "later listeners still ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_bus_cuts_a_retry_wait_short() {
    let retry = RetryPolicy::attempts(5)
        .unwrap()
        .with_backoff(Backoff::constant(Duration::from_secs(3600)));
    let bus = EventBus::builder().retry(retry).build().unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&attempts);
    bus.on("flaky", move |_ctx| {
        count.fetch_add(1, Ordering::SeqCst);
        async { Err("down".into()) }
    })
    .unwrap();
    let emission = bus.emit("flaky", ());
    while attempts.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .expect("close did not wait out the hour-long backoff")
        .unwrap();
    let errors: Vec<Error> = emission.collect().await;
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    assert!(
        matches!(errors.as_slice(), [Error::Listener { .. }]),
        "{errors:?}"
    );
}

#[test]
fn a_pool_survives_the_runtime_that_ran_it() {
    let pool = Pool::new(
        PoolOptions::default()
            .workers(1)
            .registry(MetricsRegistry::new()),
    )
    .unwrap();
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    first.block_on(async {
        // Never finishes: the runtime is dropped under it.
        pool.submit(std::future::pending()).unwrap();
        tokio::task::yield_now().await;
    });
    drop(first);
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        let ran = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&ran);
        pool.submit(async move {
            count.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        tokio::time::timeout(LIMIT, pool.wait_for_idle())
            .await
            .expect("the dropped job no longer counts as pending");
        assert_eq!(
            ran.load(Ordering::SeqCst),
            1,
            "the worker slot was given back"
        );
    });
}

#[tokio::test]
async fn task_panics_in_a_batch_are_counted_by_the_pool() {
    let registry = MetricsRegistry::new();
    let pool = Pool::new(
        PoolOptions::default()
            .name("batch")
            .registry(registry.clone()),
    )
    .unwrap();
    let result = pool
        .submit_all_and_wait([
            Box::pin(async {}) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
            Box::pin(async { panic!("boom") }),
        ])
        .await;
    assert!(matches!(result, Err(Error::Panicked { .. })));
    assert!(
        registry
            .encode()
            .contains(r#"soiree_pool_tasks_panicked_total{pool="batch"} 1"#),
        "{}",
        registry.encode()
    );
}

#[tokio::test]
async fn a_numeric_event_id_is_an_id() {
    let store = Arc::new(MemoryStore::new());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .build()
        .unwrap();
    bus.on_named("audit", "user.created", |_ctx| async { Ok(()) })
        .unwrap();
    let event = Event::new("user.created", ());
    event.properties().set(PROPERTY_EVENT_ID, 42);
    assert_eq!(event.id().as_deref(), Some("42"));
    let errors: Vec<Error> = bus.emit("user.created", event).collect().await;
    assert!(errors.is_empty());
    assert_eq!(store.results()[0].event_id, "42");
}

#[tokio::test]
async fn an_empty_payload_stays_empty_through_a_store() {
    let stored =
        StoredEvent::from_event(&Event::with_payload("a.b", soiree::Payload::empty())).unwrap();
    let event = stored.into_event();
    assert!(event.payload().is_empty());
    let topic = soiree::TypedTopic::<String>::new("a.b");
    let bus = EventBus::new();
    bus.register_listeners([bind_listener(&topic, |_ctx, _s: String| async { Ok(()) })])
        .unwrap();
    let errors: Vec<Error> = bus.emit("a.b", event).collect().await;
    match errors.as_slice() {
        [Error::Listener { source, .. }] => {
            assert!(
                matches!(source.downcast_ref::<Error>(), Some(Error::NilPayload)),
                "{source}"
            );
        }
        other => panic!("expected one NilPayload listener error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_listeners_waiting_for_idle_do_not_wait_for_each_other() {
    let bus = EventBus::builder().workers(2).build().unwrap();
    let started = Arc::new(tokio::sync::Barrier::new(2));
    let barrier = Arc::clone(&started);
    bus.on("drain", move |ctx| {
        let barrier = Arc::clone(&barrier);
        async move {
            // Both emissions are running before either waits.
            barrier.wait().await;
            ctx.bus().wait_for_idle().await;
            Ok(())
        }
    })
    .unwrap();
    let first = bus.emit("drain", 1);
    let second = bus.emit("drain", 2);
    let (first, second): (Vec<Error>, Vec<Error>) = tokio::time::timeout(
        LIMIT,
        futures::future::join(first.collect(), second.collect()),
    )
    .await
    .expect("no deadlock");
    assert!(first.is_empty() && second.is_empty());
}
