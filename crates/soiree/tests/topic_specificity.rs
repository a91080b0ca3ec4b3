//! Dispatch order against the conformance table
//! (`tests/data/specificity.tsv`): most specific pattern first,
//! whatever the registration order, and registration order within a pattern.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use soiree::EventBus;

type Log = Arc<Mutex<Vec<String>>>;

/// The conformance table, compiled into the test from the repository.
const TABLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/specificity.tsv"
));

/// (line, subject, patterns in dispatch order)
fn rows() -> Vec<(usize, String, Vec<String>)> {
    let rows: Vec<_> = TABLE
        .lines()
        .enumerate()
        .skip(1)
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let (subject, patterns) = line
                .split_once('\t')
                .unwrap_or_else(|| panic!("line {}: no tab: {line:?}", index + 1));
            (
                index + 1,
                subject.to_owned(),
                patterns.split(',').map(str::to_owned).collect(),
            )
        })
        .collect();
    assert!(rows.len() >= 3, "the table has {} rows", rows.len());
    rows
}

/// A deterministic Fisher-Yates shuffle (xorshift), so failures reproduce.
fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = items.to_vec();
    for i in (1..out.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
}

fn recorder(bus: &EventBus, pattern: &str, label: String, log: &Log) {
    let log = Arc::clone(log);
    bus.on(pattern, move |_ctx| {
        let log = Arc::clone(&log);
        let label = label.clone();
        async move {
            log.lock().unwrap().push(label);
            Ok(())
        }
    })
    .unwrap_or_else(|err| panic!("{pattern:?} rejected: {err}"));
}

#[tokio::test]
async fn dispatch_order_follows_the_table_for_any_registration_order() {
    let mut failures = Vec::new();
    for (line, subject, expected) in rows() {
        let mut orders = vec![expected.clone(), expected.iter().rev().cloned().collect()];
        orders.extend((1..=8).map(|seed| shuffled(&expected, seed)));
        for (n, order) in orders.iter().enumerate() {
            let bus = EventBus::new();
            let log = Log::default();
            for pattern in order {
                recorder(&bus, pattern, pattern.clone(), &log);
            }
            let errors: Vec<_> = bus.emit(&subject, ()).collect().await;
            assert!(errors.is_empty(), "line {line}: {errors:?}");
            let got = log.lock().unwrap().clone();
            if got != expected {
                failures.push(format!(
                    "line {line} (registration order #{n}: {order:?}): {subject:?} dispatched {got:?}, expected {expected:?}"
                ));
            }
            bus.close().await.expect("first close");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn listeners_of_one_pattern_run_in_registration_order() {
    let bus = EventBus::new();
    let log = Log::default();
    // Interleave two patterns so that registration order is not also the
    // global order.
    recorder(&bus, "user.*", "star-1".into(), &log);
    recorder(&bus, "user.created", "exact-1".into(), &log);
    recorder(&bus, "user.*", "star-2".into(), &log);
    recorder(&bus, "user.created", "exact-2".into(), &log);
    recorder(&bus, "user.*", "star-3".into(), &log);
    let errors: Vec<_> = bus.emit("user.created", ()).collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        *log.lock().unwrap(),
        ["exact-1", "exact-2", "star-1", "star-2", "star-3"]
    );
}

#[tokio::test]
async fn order_is_recomputed_after_on_and_off() {
    let bus = EventBus::new();
    let log = Log::default();
    recorder(&bus, "**", "all".into(), &log);
    let errors: Vec<_> = bus.emit("a.b", ()).collect().await;
    assert!(errors.is_empty());
    // A later, more specific registration goes first from now on (the cached
    // route for `a.b` must be invalidated).
    recorder(&bus, "a.b", "exact".into(), &log);
    let errors: Vec<_> = bus.emit("a.b", ()).collect().await;
    assert!(errors.is_empty());
    let ids = bus.listeners();
    let (_, exact_ids) = ids
        .iter()
        .find(|(p, _)| p == "a.b")
        .expect("a.b registered");
    bus.off("a.b", &exact_ids[0]).unwrap();
    let errors: Vec<_> = bus.emit("a.b", ()).collect().await;
    assert!(errors.is_empty());
    assert_eq!(*log.lock().unwrap(), ["all", "exact", "all", "all"]);
}
