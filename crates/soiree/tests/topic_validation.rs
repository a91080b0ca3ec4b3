//! Topic name validation: bad names are `InvalidTopicName` from every entry
//! point (never a panic), and names are trimmed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use soiree::{Error, Event, EventBus, ListenerBinding};

/// Invalid both as a pattern and as an emitted topic.
const BAD_NAMES: &[&str] = &[
    "", " ", "  ", "\t\n", "a..b", ".a", "a.", ".", "..", "?", "[", "a?b", "a.[0]", "user.?",
    "a.b*", "*a", "a.**b",
];

/// Valid patterns that are not concrete topics.
const WILDCARDS: &[&str] = &["*", "**", "a.*", "a.**", "**.b", "a.*.c", "a.**.c"];

fn counting_listener(
    calls: &Arc<AtomicUsize>,
) -> impl Fn(soiree::EventContext) -> futures::future::Ready<Result<(), soiree::BoxError>>
+ Send
+ Sync
+ 'static {
    let calls = Arc::clone(calls);
    move |_ctx| {
        calls.fetch_add(1, Ordering::SeqCst);
        futures::future::ready(Ok(()))
    }
}

fn assert_invalid(result: &Error, name: &str, what: &str) {
    match result {
        Error::InvalidTopicName { name: given, .. } => {
            assert_eq!(given, name, "{what}: the error names the input")
        }
        other => panic!("{what} {name:?}: expected InvalidTopicName, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_names_are_rejected_by_on_emit_off_and_interested_in() {
    let bus = EventBus::new();
    let calls = Arc::new(AtomicUsize::new(0));
    bus.on("**", counting_listener(&calls)).unwrap();
    let id = bus.on("a.b", counting_listener(&calls)).unwrap();
    for &name in BAD_NAMES {
        let err = bus.on(name, counting_listener(&calls)).unwrap_err();
        assert_invalid(&err, name, "on");
        let err = bus
            .on_named("x", name, counting_listener(&calls))
            .unwrap_err();
        assert_invalid(&err, name, "on_named");
        let err = bus.off(name, &id).unwrap_err();
        assert_invalid(&err, name, "off");
        assert!(!bus.interested_in(name), "interested_in({name:?})");

        // The emission yields the error as its only item.
        let errors: Vec<Error> = bus.emit(name, ()).collect().await;
        assert_eq!(errors.len(), 1, "emit({name:?}): {errors:?}");
        assert_invalid(&errors[0], name, "emit");
        let errors: Vec<Error> = bus
            .emit_with_context(soiree::Context::new(), name, ())
            .collect()
            .await;
        assert_eq!(errors.len(), 1, "emit_with_context({name:?}): {errors:?}");
        assert_invalid(&errors[0], name, "emit_with_context");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no listener ran");
    // Nothing was registered by the failed calls.
    let patterns: Vec<String> = bus.listeners().into_iter().map(|(p, _)| p).collect();
    assert_eq!(patterns, ["**", "a.b"]);
}

#[tokio::test]
async fn wildcards_are_patterns_but_not_emitted_topics() {
    let bus = EventBus::new();
    let calls = Arc::new(AtomicUsize::new(0));
    bus.on("**", counting_listener(&calls)).unwrap();
    for &name in WILDCARDS {
        bus.on(name, counting_listener(&calls))
            .unwrap_or_else(|err| panic!("{name:?} is a valid pattern: {err}"));
        let errors: Vec<Error> = bus.emit(name, ()).collect().await;
        assert_eq!(errors.len(), 1, "emit({name:?}): {errors:?}");
        assert_invalid(&errors[0], name, "emit");
        assert!(!bus.interested_in(name));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn registering_a_binding_with_a_bad_pattern_fails() {
    let bus = EventBus::new();
    let err = ListenerBinding::new("a..b", |_ctx| async { Ok(()) })
        .register(&bus)
        .unwrap_err();
    assert_invalid(&err, "a..b", "register");
}

#[tokio::test]
async fn names_are_trimmed_everywhere() {
    let bus = EventBus::new();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let id = bus
        .on("  user.created\t", move |ctx| {
            let log = Arc::clone(&log);
            async move {
                log.lock()
                    .unwrap()
                    .push((ctx.topic().to_owned(), ctx.pattern().to_owned()));
                Ok(())
            }
        })
        .unwrap();
    assert_eq!(bus.listeners()[0].0, "user.created");
    assert!(bus.interested_in(" user.created "));

    for topic in ["user.created", "  user.created  "] {
        let errors: Vec<Error> = bus.emit(topic, ()).collect().await;
        assert!(errors.is_empty(), "{errors:?}");
    }
    // An event whose own topic has stray whitespace matches the trimmed topic.
    let errors: Vec<Error> = bus
        .emit(" user.created", Event::new("user.created ", ()))
        .collect()
        .await;
    assert!(errors.is_empty(), "{errors:?}");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for (topic, pattern) in seen {
        assert_eq!(topic, "user.created");
        assert_eq!(pattern, "user.created");
    }

    bus.off(" user.created ", &id).unwrap();
    assert!(!bus.interested_in("user.created"));
}
