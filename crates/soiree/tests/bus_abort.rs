//! `ctx.abort()` stops the listeners after the current one, without error.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use soiree::{Error, Event, EventBus};

type Log = Arc<Mutex<Vec<String>>>;

fn recorder(bus: &EventBus, pattern: &str, label: &'static str, log: &Log) {
    let log = Arc::clone(log);
    bus.on(pattern, move |_ctx| {
        log.lock().unwrap().push(label.to_owned());
        async { Ok(()) }
    })
    .unwrap();
}

fn aborter(bus: &EventBus, pattern: &str, log: &Log) {
    let log = Arc::clone(log);
    bus.on(pattern, move |ctx| {
        log.lock().unwrap().push("aborter".to_owned());
        // Only the first emission's payload asks to abort.
        if ctx.payload_as::<bool>() == Some(&true) {
            ctx.abort();
        }
        async { Ok(()) }
    })
    .unwrap();
}

#[tokio::test]
async fn abort_stops_later_listeners_without_an_error() {
    let bus = EventBus::new();
    let log = Log::default();
    recorder(&bus, "order.placed", "first", &log);
    aborter(&bus, "order.*", &log);
    recorder(&bus, "order.*", "same-pattern-later", &log);
    recorder(&bus, "**", "last", &log);

    let event = Event::new("order.placed", true);
    let errors: Vec<Error> = bus.emit("order.placed", event).collect().await;
    assert!(errors.is_empty(), "an abort is not an error: {errors:?}");
    assert_eq!(*log.lock().unwrap(), ["first", "aborter"]);

    // The next emission is not affected.
    log.lock().unwrap().clear();
    let errors: Vec<Error> = bus.emit("order.placed", false).collect().await;
    assert!(errors.is_empty());
    assert_eq!(
        *log.lock().unwrap(),
        ["first", "aborter", "same-pattern-later", "last"]
    );
}

#[tokio::test]
async fn abort_after_an_error_keeps_the_error() {
    let bus = EventBus::new();
    let log = Log::default();
    bus.on_named("fails", "a.b", |_ctx| async { Err("failed".into()) })
        .unwrap();
    aborter(&bus, "a.*", &log);
    recorder(&bus, "**", "never", &log);
    let errors: Vec<Error> = bus.emit("a.b", true).collect().await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(matches!(&errors[0], Error::Listener { listener_id, .. } if listener_id == "fails"));
    assert_eq!(*log.lock().unwrap(), ["aborter"]);
}

#[tokio::test]
async fn an_event_aborted_before_emitting_runs_no_listener() {
    let bus = EventBus::new();
    let log = Log::default();
    recorder(&bus, "a", "never", &log);
    let event = Event::new("a", ());
    event.set_aborted(true);
    assert!(event.is_aborted());
    let errors: Vec<Error> = bus.emit("a", event).collect().await;
    assert!(errors.is_empty());
    assert!(log.lock().unwrap().is_empty());
}
