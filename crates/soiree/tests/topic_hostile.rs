//! Hostile topics and patterns: the longest names the bus accepts route
//! correctly through several `**`, longer ones are a typed error from every
//! entry point (with a short error), and deep patterns never overflow the
//! stack.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use soiree::{Error, EventBus, MAX_TOPIC_LEN, MAX_TOPIC_SEGMENTS, topic_matches};

/// Segment `i` of the longest topic: distinct, padded to 255 bytes, so that
/// 256 of them with their dots come within a byte of `MAX_TOPIC_LEN`.
fn segment(i: usize) -> String {
    format!("{:x<255}", format!("s{i}-"))
}

fn longest_topic() -> String {
    let topic = (0..MAX_TOPIC_SEGMENTS)
        .map(segment)
        .collect::<Vec<_>>()
        .join(".");
    assert_eq!(topic.len(), MAX_TOPIC_LEN - 1);
    topic
}

fn counting(
    calls: &Arc<AtomicUsize>,
) -> impl Fn(soiree::EventContext) -> Ready + Send + Sync + use<> {
    let calls = Arc::clone(calls);
    move |_ctx| {
        calls.fetch_add(1, Ordering::SeqCst);
        futures::future::ready(Ok(()))
    }
}

type Ready = futures::future::Ready<Result<(), soiree::BoxError>>;

#[tokio::test]
async fn the_longest_topic_routes_through_two_and_three_globstars() {
    let topic = longest_topic();
    let s = segment;
    let patterns = [
        (format!("{}.**.{}.**.{}", s(0), s(100), s(255)), true),
        (format!("**.{}.**.{}.**", s(10), s(20)), true),
        (format!("{}.**.*.{}.**.*.**", s(0), s(128)), true),
        (format!("**.{}.**.{}.**", s(20), s(10)), false),
        (format!("**.{}.**", s(255)), false),
        (format!("{}.**.nope.**.{}", s(0), s(255)), false),
        ("**.**.**".to_owned(), true),
        // As many segments as a pattern may have.
        (
            format!("{}.{}", vec!["**"; 128].join("."), vec!["*"; 128].join(".")),
            true,
        ),
        (
            format!("{}.{}", vec!["*"; 128].join("."), vec!["**"; 128].join(".")),
            true,
        ),
        (format!("*.{}", vec!["**"; 255].join(".")), true),
        (vec!["*"; 255].join("."), false),
    ];
    let bus = EventBus::new();
    let mut counters = Vec::new();
    for (pattern, matches) in &patterns {
        assert_eq!(topic_matches(pattern, &topic), *matches, "{pattern:.80}");
        let calls = Arc::new(AtomicUsize::new(0));
        bus.on(pattern, counting(&calls)).expect("a valid pattern");
        counters.push(calls);
    }
    assert!(bus.interested_in(&topic));
    let errors: Vec<Error> = bus.emit(&topic, ()).collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    for ((pattern, matches), calls) in patterns.iter().zip(&counters) {
        assert_eq!(
            calls.load(Ordering::SeqCst),
            usize::from(*matches),
            "{pattern:.80}"
        );
    }
}

/// The error is `InvalidTopicName` with the name cut short, and (unless the
/// name is rejected for another reason first) the reason names the limit.
fn assert_too_long(err: &Error, what: &str, names_the_limit: bool) {
    match err {
        Error::InvalidTopicName { name, reason } => {
            assert!(name.chars().count() <= 65, "{what}: the error is short");
            assert!(name.ends_with('…'), "{what}: {name:?}");
            assert!(
                !names_the_limit || reason.contains("MAX_TOPIC"),
                "{what}: {reason}"
            );
        }
        other => panic!("{what}: expected InvalidTopicName, got {other:?}"),
    }
}

#[tokio::test]
async fn names_past_the_limits_are_invalid_everywhere() {
    let too_many_segments = vec!["a"; MAX_TOPIC_SEGMENTS + 1].join(".");
    let too_long = "a".repeat(MAX_TOPIC_LEN + 1);
    let huge = "a.".repeat(8 << 20) + "a";
    let globstars = vec!["**"; MAX_TOPIC_SEGMENTS + 1].join(".");

    let bus = EventBus::new();
    let calls = Arc::new(AtomicUsize::new(0));
    bus.on("**", counting(&calls)).unwrap();
    let id = bus.on("a", counting(&calls)).unwrap();
    for name in [&too_many_segments, &too_long, &huge, &globstars] {
        let what = format!("{} bytes", name.len());
        assert_too_long(&bus.on(name, counting(&calls)).unwrap_err(), &what, true);
        assert_too_long(&bus.off(name, &id).unwrap_err(), &what, true);
        assert!(!bus.interested_in(name), "{what}");
        let errors: Vec<Error> = bus.emit(name, ()).collect().await;
        assert_eq!(errors.len(), 1, "{what}: {errors:?}");
        // `**` as a topic is rejected as not concrete before its length.
        let concrete = !name.contains('*');
        assert_too_long(&errors[0], &what, concrete);

        assert!(!topic_matches("**", name), "{what}");
        assert!(!topic_matches(name, "a"), "{what}");
        assert!(!topic_matches(name, name), "{what}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no listener ran");

    // At the limits, names are accepted.
    let at_segments = vec!["a"; MAX_TOPIC_SEGMENTS].join(".");
    let at_len = "a".repeat(MAX_TOPIC_LEN);
    for name in [&at_segments, &at_len] {
        let id = bus.on(name, counting(&calls)).expect("at the limit");
        let errors: Vec<Error> = bus.emit(name, ()).collect().await;
        assert!(errors.is_empty(), "{errors:?}");
        bus.off(name, &id).expect("registered");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2 * 2,
        "`**` and the name's own"
    );
}

/// Runs `f` on a thread with a 256 KiB stack, which code recursing per
/// segment would overflow on the deepest patterns.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("a thread")
        .join()
        .expect("no panic");
}

#[test]
fn the_deepest_patterns_register_route_and_drop_on_a_small_stack() {
    on_small_stack(|| {
        let deepest = [
            vec!["a"; MAX_TOPIC_SEGMENTS].join("."),
            vec!["**"; MAX_TOPIC_SEGMENTS].join("."),
            vec!["*"; MAX_TOPIC_SEGMENTS].join("."),
            vec!["a.**"; MAX_TOPIC_SEGMENTS / 2].join("."),
            vec!["**.a"; MAX_TOPIC_SEGMENTS / 2].join("."),
        ];
        let topic = vec!["a"; MAX_TOPIC_SEGMENTS].join(".");
        let bus = EventBus::new();
        let mut ids = Vec::new();
        for pattern in &deepest {
            assert!(topic_matches(pattern, &topic), "{pattern:.40}");
            ids.push(bus.on(pattern, |_ctx| async { Ok(()) }).expect("valid"));
        }
        assert!(bus.interested_in(&topic));
        for (pattern, id) in deepest.iter().zip(&ids) {
            bus.off(pattern, id).expect("registered");
        }
        assert!(!bus.interested_in(&topic));
        for pattern in &deepest {
            bus.on(pattern, |_ctx| async { Ok(()) }).expect("valid");
        }
        drop(bus);
    });
}
