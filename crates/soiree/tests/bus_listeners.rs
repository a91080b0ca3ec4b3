//! Registering and removing listeners: ids, `off` and its errors, removal
//! during dispatch, `register_listeners`, and clients.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use soiree::{Error, Event, EventBus, ListenerBinding, ListenerId};

type Log = Arc<Mutex<Vec<String>>>;

fn recorder(bus: &EventBus, pattern: &str, label: &'static str, log: &Log) -> ListenerId {
    let log = Arc::clone(log);
    bus.on(pattern, move |_ctx| {
        log.lock().unwrap().push(label.to_owned());
        async { Ok(()) }
    })
    .unwrap()
}

async fn emit_ok(bus: &EventBus, topic: &str) {
    let errors: Vec<Error> =
        tokio::time::timeout(Duration::from_secs(10), bus.emit(topic, ()).collect())
            .await
            .expect("the emission finished (no deadlock)");
    assert!(errors.is_empty(), "{errors:?}");
}

#[tokio::test]
async fn on_named_gives_a_stable_id() {
    let bus = EventBus::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let id = bus
        .on_named("send-welcome", "user.created", move |ctx| {
            log.lock().unwrap().push(ctx.listener_id().clone());
            async { Ok(()) }
        })
        .unwrap();
    assert_eq!(id, "send-welcome");
    assert_eq!(id.as_str(), "send-welcome");
    assert_eq!(id.to_string(), "send-welcome");
    emit_ok(&bus, "user.created").await;
    assert_eq!(seen.lock().unwrap().as_slice(), std::slice::from_ref(&id));
    assert_eq!(
        bus.listeners(),
        [("user.created".to_owned(), vec![id.clone()])]
    );
    // The name removes it.
    bus.off("user.created", &id).unwrap();
    assert!(bus.listeners().is_empty());
}

#[tokio::test]
async fn generated_ids_are_unique_ulids_or_from_the_id_generator() {
    let bus = EventBus::new();
    let ids: Vec<ListenerId> = (0..20)
        .map(|_| bus.on("a", |_ctx| async { Ok(()) }).unwrap())
        .collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
    for id in &ids {
        assert!(ulid::Ulid::from_string(id.as_str()).is_ok(), "{id}");
    }
    let bus = EventBus::builder()
        .id_generator(|| "fixed".to_owned())
        .build()
        .unwrap();
    assert_eq!(bus.on("a", |_ctx| async { Ok(()) }).unwrap(), "fixed");
}

#[tokio::test]
async fn off_removes_a_listener_and_reports_what_was_not_found() {
    let bus = EventBus::new();
    let log = Log::default();
    let first = recorder(&bus, "a.b", "first", &log);
    let second = recorder(&bus, "a.b", "second", &log);
    let other = recorder(&bus, "x.y", "other", &log);

    match bus.off("no.such.pattern", &first).unwrap_err() {
        Error::TopicNotFound(pattern) => assert_eq!(pattern, "no.such.pattern"),
        err => panic!("expected TopicNotFound, got {err:?}"),
    }
    match bus.off("a.b", &other).unwrap_err() {
        Error::ListenerNotFound(id) => assert_eq!(id, other.as_str()),
        err => panic!("expected ListenerNotFound, got {err:?}"),
    }

    bus.off("a.b", &first).unwrap();
    emit_ok(&bus, "a.b").await;
    assert_eq!(*log.lock().unwrap(), ["second"]);
    assert!(matches!(
        bus.off("a.b", &first),
        Err(Error::ListenerNotFound(_))
    ));

    bus.off("a.b", &second).unwrap();
    assert!(!bus.interested_in("a.b"));
    // The pattern is gone with its last listener.
    assert!(matches!(
        bus.off("a.b", &second),
        Err(Error::TopicNotFound(_))
    ));
    assert!(bus.interested_in("x.y"));
}

#[tokio::test]
async fn interested_in_follows_registrations() {
    let bus = EventBus::new();
    assert!(!bus.interested_in("user.created"));
    let id = bus.on("user.*", |_ctx| async { Ok(()) }).unwrap();
    assert!(bus.interested_in("user.created"));
    assert!(!bus.interested_in("user.created.later"));
    assert!(!bus.interested_in("org.created"));
    assert!(!bus.interested_in("user.*"), "a pattern is not a topic");
    bus.off("user.*", &id).unwrap();
    assert!(!bus.interested_in("user.created"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_can_remove_itself_while_running() {
    let bus = EventBus::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    bus.on("once.only", move |ctx| {
        counter.fetch_add(1, Ordering::SeqCst);
        let removed = ctx.bus().off(ctx.pattern(), ctx.listener_id());
        async move {
            removed?;
            Ok(())
        }
    })
    .unwrap();
    let log = Log::default();
    recorder(&bus, "once.*", "after", &log);

    emit_ok(&bus, "once.only").await;
    emit_ok(&bus, "once.only").await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "it ran once, then was gone"
    );
    assert_eq!(*log.lock().unwrap(), ["after", "after"]);
    assert_eq!(bus.listeners().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_later_listener_during_dispatch_skips_it() {
    let bus = EventBus::new();
    let log = Log::default();
    let victim: Arc<OnceLock<ListenerId>> = Arc::default();
    {
        let (log, victim) = (Arc::clone(&log), Arc::clone(&victim));
        bus.on("a.b", move |ctx| {
            log.lock().unwrap().push("remover".to_owned());
            let result = ctx
                .bus()
                .off("a.*", victim.get().expect("victim registered"));
            async move {
                result?;
                Ok(())
            }
        })
        .unwrap();
    }
    victim.set(recorder(&bus, "a.*", "victim", &log)).unwrap();
    recorder(&bus, "**", "last", &log);

    emit_ok(&bus, "a.b").await;
    assert_eq!(*log.lock().unwrap(), ["remover", "last"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_can_register_listeners_while_running() {
    let bus = EventBus::new();
    let log = Log::default();
    {
        let log = Arc::clone(&log);
        bus.on("grow", move |ctx| {
            let inner = Arc::clone(&log);
            let added = ctx.bus().on("grow", move |_ctx| {
                inner.lock().unwrap().push("added".to_owned());
                async { Ok(()) }
            });
            async move {
                added?;
                Ok(())
            }
        })
        .unwrap();
    }
    emit_ok(&bus, "grow").await;
    emit_ok(&bus, "grow").await;
    // The one added during the first emission runs from the second on.
    assert_eq!(*log.lock().unwrap(), ["added"]);
}

#[tokio::test]
async fn register_listeners_registers_all_in_order() {
    let bus = EventBus::new();
    let log = Log::default();
    let bindings = ["first", "second", "third"].map(|label| {
        let log = Arc::clone(&log);
        ListenerBinding::new("batch.run", move |_ctx| {
            log.lock().unwrap().push(label.to_owned());
            async { Ok(()) }
        })
    });
    let [first, second, third] = bindings;
    let ids = bus
        .register_listeners([first, second.named("second"), third])
        .unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[1], "second");
    emit_ok(&bus, "batch.run").await;
    assert_eq!(*log.lock().unwrap(), ["first", "second", "third"]);
}

#[tokio::test]
async fn register_listeners_is_all_or_nothing() {
    let bus = EventBus::new();
    let log = Log::default();
    let keep = recorder(&bus, "batch.run", "existing", &log);
    let valid = {
        let log = Arc::clone(&log);
        ListenerBinding::new("batch.run", move |_ctx| {
            log.lock().unwrap().push("new".to_owned());
            async { Ok(()) }
        })
    };
    let also_valid = ListenerBinding::new("other.topic", |_ctx| async { Ok(()) });
    let invalid = ListenerBinding::new("batch..run", |_ctx| async { Ok(()) });

    let err = bus
        .register_listeners([valid, also_valid, invalid])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTopicName { .. }), "{err:?}");
    // The bindings registered before the invalid one were removed again;
    // the listener that was there before stays.
    assert_eq!(bus.listeners(), [("batch.run".to_owned(), vec![keep])]);
    assert!(!bus.interested_in("other.topic"));
    emit_ok(&bus, "batch.run").await;
    assert_eq!(*log.lock().unwrap(), ["existing"]);
}

#[derive(Debug, PartialEq)]
struct Db(&'static str);

#[tokio::test]
async fn clients_come_from_the_event_or_else_the_bus() {
    let bus = EventBus::builder().client(Db("bus")).build().unwrap();
    assert_eq!(bus.client::<Db>(), Some(&Db("bus")));
    assert_eq!(
        bus.client::<String>(),
        None,
        "another type is not the client"
    );

    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    bus.on("q", move |ctx| {
        log.lock().unwrap().push((
            ctx.client::<Db>().map(|db| db.0),
            ctx.client::<u8>().copied(),
        ));
        async { Ok(()) }
    })
    .unwrap();
    emit_ok(&bus, "q").await;

    let mut event = Event::new("q", ());
    event.set_client(Db("event"));
    assert_eq!(event.client::<Db>(), Some(&Db("event")));
    let errors: Vec<Error> = bus.emit("q", event).collect().await;
    assert!(errors.is_empty());

    assert_eq!(
        *seen.lock().unwrap(),
        [(Some("bus"), None), (Some("event"), None)],
        "the event's client wins over the bus's"
    );

    let plain = EventBus::new();
    assert_eq!(plain.client::<Db>(), None);
}
