//! Emitting: the `Emission` stream carries every listener error and ends after
//! the last listener; dropping it does not cancel delivery; closed buses,
//! mismatched topics, event ids and shared properties.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use soiree::{Error, Event, EventBus, PROPERTY_EVENT_ID, Payload};
use tokio::sync::{Notify, Semaphore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_streamed_whatever_the_buffer_size() {
    for buffer in [1, 0] {
        every_error_is_streamed_with_buffer(buffer).await;
    }
}

async fn every_error_is_streamed_with_buffer(buffer: usize) {
    const LISTENERS: usize = 20;
    const EMISSIONS: usize = 50;
    let bus = EventBus::builder().error_buffer(buffer).build().unwrap();
    for n in 0..LISTENERS {
        bus.on_named(&format!("failing-{n}"), "job.run", move |_ctx| async move {
            Err(format!("failure {n}").into())
        })
        .unwrap();
    }
    let emissions: Vec<_> = (0..EMISSIONS).map(|_| bus.emit("job.run", ())).collect();
    let results = futures::future::join_all(
        emissions
            .into_iter()
            .map(|emission| emission.collect::<Vec<Error>>()),
    )
    .await;

    let total: usize = results.iter().map(Vec::len).sum();
    assert_eq!(total, LISTENERS * EMISSIONS, "every error received");
    for errors in &results {
        let ids: HashSet<String> = errors
            .iter()
            .map(|err| match err {
                Error::Listener {
                    listener_id,
                    topic,
                    source,
                } => {
                    assert_eq!(topic, "job.run");
                    assert!(source.to_string().starts_with("failure "), "{source}");
                    listener_id.to_string()
                }
                other => panic!("expected a listener error, got {other:?}"),
            })
            .collect();
        assert_eq!(
            ids.len(),
            LISTENERS,
            "one error from each listener per emission"
        );
    }
}

#[tokio::test]
async fn errors_come_in_listener_order() {
    let bus = EventBus::new();
    for (name, pattern) in [("third", "**"), ("first", "a.b"), ("second", "a.*")] {
        bus.on_named(name, pattern, move |_ctx| async move { Err(name.into()) })
            .unwrap();
    }
    let errors: Vec<Error> = bus.emit("a.b", ()).collect().await;
    let ids: Vec<String> = errors
        .iter()
        .map(|err| match err {
            Error::Listener { listener_id, .. } => listener_id.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, ["first", "second", "third"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emission_ends_after_its_last_listener_finished() {
    let bus = EventBus::new();
    let finished = Arc::new(AtomicUsize::new(0));
    for n in 0..3u64 {
        let finished = Arc::clone(&finished);
        bus.on("slow.task", move |_ctx| {
            let finished = Arc::clone(&finished);
            async move {
                tokio::time::sleep(Duration::from_millis(5 * (3 - n))).await;
                finished.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .unwrap();
    }
    let mut emission = bus.emit("slow.task", ());
    assert!(emission.next().await.is_none(), "no errors");
    assert_eq!(
        finished.load(Ordering::SeqCst),
        3,
        "every listener finished first"
    );
    assert!(emission.is_finished());
}

#[tokio::test]
async fn an_emission_nobody_hears_ends_at_once() {
    let bus = EventBus::new();
    bus.on("other.topic", |_ctx| async { Ok(()) }).unwrap();
    let errors: Vec<Error> = bus.emit("nobody.listens", ()).collect().await;
    assert!(errors.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_emission_does_not_cancel_delivery() {
    let bus = EventBus::new();
    // Listeners wait for a permit, so the test decides when they finish.
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(Notify::new());
    let ran = Arc::new(AtomicUsize::new(0));
    {
        let (gate, started, ran) = (Arc::clone(&gate), Arc::clone(&started), Arc::clone(&ran));
        bus.on("fire.forget", move |_ctx| {
            let (gate, started, ran) = (Arc::clone(&gate), Arc::clone(&started), Arc::clone(&ran));
            async move {
                started.notify_one();
                gate.acquire().await.expect("gate open").forget();
                ran.fetch_add(1, Ordering::SeqCst);
                // An error with nobody left to receive it is logged.
                Err("after the caller left".into())
            }
        })
        .unwrap();
    }
    let later_ran = Arc::new(AtomicUsize::new(0));
    {
        let ran = Arc::clone(&later_ran);
        bus.on("fire.*", move |_ctx| {
            ran.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .unwrap();
    }

    // Dropped while its first listener runs.
    let emission = bus.emit("fire.forget", ());
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the listener started");
    drop(emission);
    gate.add_permits(1);
    tokio::time::timeout(Duration::from_secs(10), bus.wait_for_idle())
        .await
        .expect("the bus went idle");
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the running listener finished"
    );
    assert_eq!(
        later_ran.load(Ordering::SeqCst),
        1,
        "the later listener still ran"
    );

    // Dropped at once, and detached: both still delivered.
    drop(bus.emit("fire.forget", ()));
    bus.emit("fire.forget", ()).detach();
    gate.add_permits(2);
    tokio::time::timeout(Duration::from_secs(10), bus.wait_for_idle())
        .await
        .expect("the bus went idle");
    assert_eq!(ran.load(Ordering::SeqCst), 3);
    assert_eq!(later_ran.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_closed_bus_yields_closed() {
    let bus = EventBus::new();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    bus.on("a.b", move |_ctx| {
        flag.store(true, Ordering::SeqCst);
        async { Ok(()) }
    })
    .unwrap();
    bus.close().await.unwrap();
    let errors: Vec<Error> = bus.emit("a.b", ()).collect().await;
    assert!(matches!(errors.as_slice(), [Error::Closed]), "{errors:?}");
    let errors: Vec<Error> = bus
        .clone()
        .emit("a.b", Event::new("a.b", 1))
        .collect()
        .await;
    assert!(matches!(errors.as_slice(), [Error::Closed]), "{errors:?}");
    assert!(!ran.load(Ordering::SeqCst));
}

#[tokio::test]
async fn an_event_on_another_topic_is_a_mismatch() {
    let bus = EventBus::new();
    let ran = Arc::new(AtomicUsize::new(0));
    for pattern in ["a.b", "a.c", "**"] {
        let ran = Arc::clone(&ran);
        bus.on(pattern, move |_ctx| {
            ran.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .unwrap();
    }
    let errors: Vec<Error> = bus.emit("a.b", Event::new("a.c", ())).collect().await;
    match errors.as_slice() {
        [Error::EventTopicMismatch { emitted, event }] => {
            assert_eq!(emitted, "a.b");
            assert_eq!(event, "a.c");
        }
        other => panic!("expected one EventTopicMismatch, got {other:?}"),
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "no listener ran");
}

/// Records `ctx.event_id()` and the property, per listener run.
/// Per listener run: `ctx.event_id()` and the `soiree.event_id` property.
type SeenIds = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;

fn id_recorder(bus: &EventBus, pattern: &str) -> SeenIds {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    bus.on(pattern, move |ctx| {
        log.lock()
            .unwrap()
            .push((ctx.event_id(), ctx.property_str(PROPERTY_EVENT_ID)));
        async { Ok(()) }
    })
    .unwrap();
    seen
}

#[tokio::test]
async fn every_emitted_event_gets_an_event_id() {
    let counter = Arc::new(AtomicUsize::new(0));
    let next = Arc::clone(&counter);
    let bus = EventBus::builder()
        .id_generator(move || format!("id-{}", next.fetch_add(1, Ordering::SeqCst)))
        .build()
        .unwrap();
    let seen = id_recorder(&bus, "order.*");
    let _second = id_recorder(&bus, "order.placed");

    let event = Event::new("order.placed", 1);
    let properties = event.properties().clone();
    assert_eq!(soiree::event_id(&event), None);
    let errors: Vec<Error> = bus.emit("order.placed", event).collect().await;
    assert!(errors.is_empty());
    // Both listeners (and the caller's handle on the properties) see one id.
    let id = properties
        .get_str(PROPERTY_EVENT_ID)
        .expect("an id was set");
    assert!(id.starts_with("id-"), "{id}");
    // Payloads and plain values get ids too, each its own.
    let errors: Vec<Error> = bus.emit("order.placed", Payload::new(2)).collect().await;
    assert!(errors.is_empty());
    let errors: Vec<Error> = bus.emit("order.shipped", "x").collect().await;
    assert!(errors.is_empty());

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0], (Some(id.clone()), Some(id.clone())));
    let ids: HashSet<_> = seen
        .iter()
        .map(|(id, _)| id.clone().expect("an id"))
        .collect();
    assert_eq!(ids.len(), 3, "a new id per emission: {seen:?}");
}

#[tokio::test]
async fn the_default_event_id_is_a_ulid() {
    let bus = EventBus::new();
    let seen = id_recorder(&bus, "a");
    let errors: Vec<Error> = bus.emit("a", ()).collect().await;
    assert!(errors.is_empty());
    let id = seen.lock().unwrap()[0].0.clone().expect("an id");
    assert!(ulid::Ulid::from_string(&id).is_ok(), "{id} is a ULID");
}

#[tokio::test]
async fn an_existing_event_id_is_kept() {
    let bus = EventBus::new();
    let seen = id_recorder(&bus, "order.placed");
    let event = Event::new("order.placed", ());
    event.properties().set(PROPERTY_EVENT_ID, "evt-given");
    let errors: Vec<Error> = bus.emit("order.placed", event).collect().await;
    assert!(errors.is_empty());
    assert_eq!(
        seen.lock().unwrap()[0],
        (Some("evt-given".to_owned()), Some("evt-given".to_owned()))
    );
}

#[tokio::test]
async fn properties_are_shared_by_the_listeners_in_order() {
    let bus = EventBus::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    // Registered least specific first: dispatch order, not registration
    // order, decides who sees what.
    for (step, pattern) in [(3, "**"), (2, "user.*"), (1, "user.created")] {
        let seen = Arc::clone(&seen);
        bus.on(pattern, move |ctx| {
            let before = ctx.property("step");
            seen.lock().unwrap().push(before.clone());
            ctx.properties().set("step", step);
            ctx.properties().set(format!("by-{step}"), ctx.pattern());
            async { Ok(()) }
        })
        .unwrap();
    }
    let event = Event::new(
        "user.created",
        serde_json::json!({ "email": "ada@example.com" }),
    );
    event.properties().set("name", "Ada Lovelace");
    let properties = event.properties().clone();
    let errors: Vec<Error> = bus.emit("user.created", event).collect().await;
    assert!(errors.is_empty());
    assert_eq!(
        *seen.lock().unwrap(),
        [None, Some(1.into()), Some(2.into())],
        "each listener saw the previous one's write"
    );
    assert_eq!(properties.get("step"), Some(3.into()));
    assert_eq!(properties.get_str("by-1").as_deref(), Some("user.created"));
    assert_eq!(properties.get_str("name").as_deref(), Some("Ada Lovelace"));

    // A new emission starts from its own properties.
    seen.lock().unwrap().clear();
    let errors: Vec<Error> = bus.emit("user.created", ()).collect().await;
    assert!(errors.is_empty());
    assert_eq!(seen.lock().unwrap()[0], None);
}

#[tokio::test]
async fn listeners_see_the_payload_and_topic() {
    #[derive(Debug, Clone, PartialEq, serde::Serialize)]
    struct Order {
        id: u32,
    }
    let bus = EventBus::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    bus.on("order.*", move |ctx| {
        log.lock().unwrap().push((
            ctx.topic().to_owned(),
            ctx.payload_as::<Order>().cloned(),
            ctx.event().payload().type_name().map(str::to_owned),
        ));
        async { Ok(()) }
    })
    .unwrap();
    let errors: Vec<Error> = bus.emit("order.placed", Order { id: 7 }).collect().await;
    assert!(errors.is_empty());
    let errors: Vec<Error> = bus.emit("order.empty", Payload::empty()).collect().await;
    assert!(errors.is_empty());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, "order.placed");
    assert_eq!(seen[0].1, Some(Order { id: 7 }));
    assert!(seen[0].2.as_deref().unwrap().ends_with("Order"));
    assert_eq!(seen[1], ("order.empty".to_owned(), None, None));
}
