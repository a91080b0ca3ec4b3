//! Property tests: any string given to `on`, `off`, `emit`, `interested_in`
//! and `topic_matches` gives a result or a typed error, never a panic; and the
//! bus's routing agrees with `topic_matches` and with a reference matcher.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use proptest::prelude::*;
use soiree::{Error, EventBus, topic_matches};

/// A straightforward recursive matcher: `*` is one segment, `**` zero or
/// more, except that a trailing `**` after another segment needs at least one.
fn reference_matches(pattern: &str, subject: &str) -> bool {
    fn go(p: &[&str], s: &[&str], at_start: bool) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((&"**", rest)) => {
                if rest.is_empty() && !at_start {
                    !s.is_empty()
                } else {
                    (0..=s.len()).any(|skip| go(rest, &s[skip..], false))
                }
            }
            Some((&"*", rest)) => !s.is_empty() && go(rest, &s[1..], false),
            Some((literal, rest)) => s.first() == Some(literal) && go(rest, &s[1..], false),
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    go(&p, &s, true)
}

/// Names made of few, often repeated segments, so that wildcards and
/// literals meet: empty segments, stray spaces and reserved characters too.
fn dotted(segments: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(segments), 0..=max).prop_map(|s| s.join("."))
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => dotted(&["a", "b", "c", "*", "**"], 6),
        1 => dotted(&["a", "b", "", " ", "*", "**", "a*", "?", "[", "é"], 5),
        1 => "[ab.*?\\[ \\t]{0,12}",
        1 => any::<String>(),
    ]
}

fn topic_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => dotted(&["a", "b", "c"], 6),
        1 => dotted(&["a", "b", "", " a", "*", "**", "?", "é"], 5),
        1 => "[ab.*?\\[ \\t]{0,12}",
        1 => any::<String>(),
    ]
}

/// Valid patterns with several `**`, often next to each other or to `*`.
fn globstar_pattern_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(&["a", "b", "*", "**", "**", "**"][..]),
        1..=10,
    )
    .prop_map(|s| s.join("."))
}

/// Valid topics long enough for several `**` to split them many ways.
fn long_topic_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&["a", "b"][..]), 1..=14).prop_map(|s| s.join("."))
}

fn is_valid_pattern(name: &str) -> bool {
    let name = name.trim();
    !name.is_empty()
        && !name.contains(['?', '['])
        && name
            .split('.')
            .all(|s| !s.is_empty() && (!s.contains('*') || s == "*" || s == "**"))
}

fn is_valid_topic(name: &str) -> bool {
    is_valid_pattern(name) && !name.contains('*')
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn topic_matches_never_panics_and_agrees_with_the_reference(
        pattern in pattern_strategy(),
        subject in topic_strategy(),
    ) {
        let got = topic_matches(&pattern, &subject);
        prop_assert_eq!(got, reference_matches(&pattern, &subject));
    }

    #[test]
    fn arbitrary_strings_never_panic(pattern in any::<String>(), topic in any::<String>()) {
        let _ = topic_matches(&pattern, &topic);
        let _ = topic_matches(&topic, &pattern);
        let bus = EventBus::new();
        let registered = bus.on(&pattern, |_ctx| async { Ok(()) });
        match &registered {
            Ok(_) => prop_assert!(is_valid_pattern(&pattern)),
            Err(Error::InvalidTopicName { .. }) => prop_assert!(!is_valid_pattern(&pattern)),
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
        let _ = bus.interested_in(&topic);
        let id = registered.unwrap_or_else(|_| bus.on("x", |_ctx| async { Ok(()) }).unwrap());
        let off = bus.off(&topic, &id);
        prop_assert!(
            matches!(off, Ok(()) | Err(Error::InvalidTopicName { .. } | Error::TopicNotFound(_) | Error::ListenerNotFound(_))),
            "off gave {:?}", off
        );
        // Emit inside the runtime: the bus runs listeners on the current one.
        let errors: Vec<Error> = runtime().block_on(async { bus.emit(&topic, ()).collect().await });
        if is_valid_topic(&topic) {
            prop_assert!(errors.is_empty(), "{:?}", errors);
        } else {
            prop_assert!(
                matches!(errors.as_slice(), [Error::InvalidTopicName { .. }]),
                "{:?}", errors
            );
        }
    }

    #[test]
    fn the_bus_routes_exactly_what_topic_matches_matches(
        patterns in prop::collection::vec(pattern_strategy(), 1..6),
        topic in topic_strategy(),
    ) {
        let runtime = runtime();
        let bus = EventBus::new();
        let calls: Vec<Arc<AtomicUsize>> = patterns.iter().map(|_| Arc::default()).collect();
        let mut registered = Vec::new();
        for (pattern, calls) in patterns.iter().zip(&calls) {
            let calls = Arc::clone(calls);
            let result = bus.on(pattern, move |_ctx| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            });
            prop_assert_eq!(result.is_ok(), is_valid_pattern(pattern), "on({:?})", pattern);
            registered.push(result.is_ok());
        }
        let expected: Vec<bool> = patterns
            .iter()
            .zip(&registered)
            .map(|(pattern, ok)| *ok && is_valid_topic(&topic) && topic_matches(pattern.trim(), topic.trim()))
            .collect();
        prop_assert_eq!(bus.interested_in(&topic), expected.iter().any(|m| *m));
        let errors: Vec<Error> = runtime.block_on(async { bus.emit(&topic, ()).collect().await });
        prop_assert_eq!(errors.is_empty(), is_valid_topic(&topic), "{:?}", errors);
        for ((pattern, calls), expected) in patterns.iter().zip(&calls).zip(&expected) {
            prop_assert_eq!(
                calls.load(Ordering::SeqCst),
                usize::from(*expected),
                "{:?} on {:?}", pattern, topic
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn several_globstars_match_and_route_like_the_reference(
        patterns in prop::collection::vec(globstar_pattern_strategy(), 1..8),
        topic in long_topic_strategy(),
    ) {
        let bus = EventBus::new();
        let calls: Vec<Arc<AtomicUsize>> = patterns.iter().map(|_| Arc::default()).collect();
        for (pattern, calls) in patterns.iter().zip(&calls) {
            let calls = Arc::clone(calls);
            bus.on(pattern, move |_ctx| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            })
            .expect("a valid pattern");
        }
        let expected: Vec<bool> = patterns.iter().map(|p| reference_matches(p, &topic)).collect();
        for (pattern, expected) in patterns.iter().zip(&expected) {
            prop_assert_eq!(topic_matches(pattern, &topic), *expected, "{:?} on {:?}", pattern, topic);
        }
        prop_assert_eq!(bus.interested_in(&topic), expected.iter().any(|m| *m));
        let errors: Vec<Error> = runtime().block_on(async { bus.emit(&topic, ()).collect().await });
        prop_assert!(errors.is_empty(), "{:?}", errors);
        for ((pattern, calls), expected) in patterns.iter().zip(&calls).zip(&expected) {
            // A pattern drawn twice has two listeners, each called once.
            prop_assert_eq!(
                calls.load(Ordering::SeqCst),
                usize::from(*expected),
                "{:?} on {:?}", pattern, topic
            );
        }
    }
}

#[test]
fn the_reference_matcher_agrees_with_the_conformance_table() {
    // Guards the reference itself, so that agreement with it means something.
    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/topic_matching.tsv"
    ));
    for (n, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 3 {
            continue;
        }
        assert_eq!(
            reference_matches(fields[0], fields[1]),
            fields[2] == "true",
            "line {}: {line}",
            n + 1
        );
    }
}
