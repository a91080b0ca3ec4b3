//! Panicking listeners: caught, reported once to the panic handler and once
//! as `Panicked` on the emission; the other listeners still run and the bus
//! keeps working.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use soiree::{Backoff, Error, EventBus, ListenerPanic, RetryPolicy};

type Log = Arc<Mutex<Vec<String>>>;

fn recorder(bus: &EventBus, pattern: &str, label: &'static str, log: &Log) {
    let log = Arc::clone(log);
    bus.on(pattern, move |_ctx| {
        log.lock().unwrap().push(label.to_owned());
        async { Ok(()) }
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_caught_reported_once_and_the_others_still_run() {
    let panics: Arc<Mutex<Vec<ListenerPanic>>> = Arc::default();
    let handler_log = Arc::clone(&panics);
    let bus = EventBus::builder()
        .panic_handler(move |panic| handler_log.lock().unwrap().push(panic.clone()))
        .build()
        .unwrap();
    let log = Log::default();
    recorder(&bus, "job.run", "before", &log);
    bus.on_named("explosive", "job.*", |_ctx| async {
        panic!("kaboom {}", 42);
    })
    .unwrap();
    recorder(&bus, "**", "after", &log);

    let errors: Vec<Error> = bus.emit("job.run", ()).collect().await;
    match errors.as_slice() {
        [
            Error::Panicked {
                listener_id,
                message,
            },
        ] => {
            assert_eq!(listener_id, "explosive");
            assert_eq!(message, "kaboom 42");
        }
        other => panic!("expected one Panicked, got {other:?}"),
    }
    assert_eq!(
        *log.lock().unwrap(),
        ["before", "after"],
        "the others still ran"
    );
    let panics = panics.lock().unwrap().clone();
    assert_eq!(panics.len(), 1, "the panic handler was called once");
    assert_eq!(panics[0].listener_id, "explosive");
    assert_eq!(panics[0].topic, "job.run");
    assert_eq!(panics[0].message, "kaboom 42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_keeps_working_after_panics() {
    let bus = EventBus::builder().workers(1).build().unwrap();
    let ok = Arc::new(AtomicUsize::new(0));
    bus.on("boom", |_ctx| async { panic!("static message") })
        .unwrap();
    let count = Arc::clone(&ok);
    bus.on("fine", move |_ctx| {
        count.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    })
    .unwrap();
    // More panics than workers: none of them may take a worker down.
    for _ in 0..5 {
        let errors: Vec<Error> = bus.emit("boom", ()).collect().await;
        assert!(
            matches!(errors.as_slice(), [Error::Panicked { message, .. }] if message == "static message")
        );
        let errors: Vec<Error> = bus.emit("fine", ()).collect().await;
        assert!(errors.is_empty());
    }
    assert_eq!(ok.load(Ordering::SeqCst), 5);
    // Concurrent emissions after the panics all complete.
    let all =
        futures::future::join_all((0..10).map(|_| bus.emit("fine", ()).collect::<Vec<_>>())).await;
    assert!(all.iter().all(Vec::is_empty));
    assert_eq!(ok.load(Ordering::SeqCst), 15);
}

#[tokio::test]
async fn a_panic_without_a_handler_still_reaches_the_emission() {
    let bus = EventBus::new();
    bus.on_named("p", "x", |_ctx| async {
        std::panic::panic_any(17_u32);
    })
    .unwrap();
    let errors: Vec<Error> = bus.emit("x", ()).collect().await;
    match errors.as_slice() {
        [
            Error::Panicked {
                listener_id,
                message,
            },
        ] => {
            assert_eq!(listener_id, "p");
            assert_eq!(message, "<non-string panic>");
        }
        other => panic!("expected one Panicked, got {other:?}"),
    }
}

#[tokio::test]
async fn a_panic_before_the_future_is_built_is_caught_too() {
    // The closure itself panics, before returning a future.
    let bus = EventBus::new();
    let log = Log::default();
    bus.on_named(
        "eager",
        "x",
        |_ctx| -> futures::future::Ready<Result<(), soiree::BoxError>> { panic!("eager panic") },
    )
    .unwrap();
    recorder(&bus, "*", "after", &log);
    let errors: Vec<Error> = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        bus.emit("x", ()).collect(),
    )
    .await
    .expect("the emission ended");
    assert!(
        matches!(errors.as_slice(), [Error::Panicked { message, .. }] if message == "eager panic"),
        "{errors:?}"
    );
    assert_eq!(*log.lock().unwrap(), ["after"]);
}

#[tokio::test(start_paused = true)]
async fn panics_are_not_retried() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let handled = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&handled);
    let bus = EventBus::builder()
        .retry(
            RetryPolicy::attempts(5)
                .unwrap()
                .with_backoff(Backoff::constant(std::time::Duration::from_secs(1))),
        )
        .panic_handler(move |_panic| {
            count.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let tries = Arc::clone(&attempts);
    bus.on("x", move |_ctx| {
        tries.fetch_add(1, Ordering::SeqCst);
        async { panic!("once") }
    })
    .unwrap();
    let errors: Vec<Error> = bus.emit("x", ()).collect().await;
    assert_eq!(errors.len(), 1);
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_error_handler_sees_panics() {
    let bus = EventBus::builder()
        .error_handler(|_event, err| match err {
            Error::Panicked { .. } => None,
            other => Some(other),
        })
        .build()
        .unwrap();
    bus.on("x", |_ctx| async { panic!("hidden") }).unwrap();
    let errors: Vec<Error> = bus.emit("x", ()).collect().await;
    assert!(
        errors.is_empty(),
        "swallowed by the error handler: {errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_does_not_hang_the_emission() {
    // A bug in the user's handlers ends the emission instead of leaving its
    // stream pending forever, and the bus keeps working.
    let bus = EventBus::builder()
        .error_handler(|_event, _err| panic!("error handler bug"))
        .panic_handler(|_panic| panic!("panic handler bug"))
        .build()
        .unwrap();
    bus.on("fails", |_ctx| async { Err("e".into()) }).unwrap();
    bus.on("panics", |_ctx| async { panic!("listener") })
        .unwrap();
    bus.on("fine", |_ctx| async { Ok(()) }).unwrap();
    for topic in ["fails", "panics", "fine"] {
        let ended = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            bus.emit(topic, ()).collect::<Vec<Error>>(),
        )
        .await;
        assert!(ended.is_ok(), "the {topic} emission never ended");
    }
    tokio::time::timeout(std::time::Duration::from_secs(10), bus.wait_for_idle())
        .await
        .expect("idle");
}
