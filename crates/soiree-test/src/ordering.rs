//! What the per-key ordering tests (`ordered_by_key`) of the stores share:
//! keyed events, a listener that records its runs in a [`Journal`] (with a
//! pseudo-random pause, so that runs finish out of order), and the checks
//! of the journal: no key ran twice at once ([`Journal::overlaps`]), each
//! key's events started and ended in the order expected
//! ([`Journal::out_of_order`]). Every wait is bounded by [`LIMIT`].
//!
//! # Examples
//!
//! ```no_run
//! use std::sync::Arc;
//! use soiree::{EventBus, EventQueue, MemoryStore};
//! use soiree_test::ordering::{Journal, close, event, in_order, record, until_done};
//!
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() {
//! let store = Arc::new(MemoryStore::queue());
//! for seq in 0..3 {
//!     store.enqueue(&event("soiree.key", Some("a"), seq)).await.unwrap();
//! }
//! // One worker: the memory store does not order by key itself.
//! let bus = EventBus::builder().shared_store(store.clone()).workers(1).build().unwrap();
//! let journal = Arc::new(Journal::default());
//! record(&bus, 0, &journal, |_, _, _| false);
//! bus.start().unwrap();
//! until_done(&journal, 3).await;
//! close(vec![bus], &*store).await;
//! assert_eq!(journal.out_of_order(in_order(3)), vec![]);
//! # }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use soiree::{EventBus, EventQueue, EventStore, StoredEvent};

use crate::wait::{eventually, until_drained, within};

/// The bound of every wait.
pub const LIMIT: Duration = Duration::from_secs(60);

/// The topic of the events and of the listener of [`record`].
pub const TOPIC: &str = "test.keyed";

/// An event of [`TOPIC`] with payload `{"key", "seq"}`, keyed by `key`
/// in the property `property` (the store's key property) when `Some`.
#[must_use]
pub fn event(property: &str, key: Option<&str>, seq: u64) -> StoredEvent {
    let mut properties = serde_json::Map::new();
    if let Some(key) = key {
        properties.insert(property.to_owned(), key.into());
    }
    StoredEvent {
        topic: TOPIC.to_owned(),
        payload: json!({ "key": key, "seq": seq }),
        properties,
    }
}

/// One run of a listener.
#[derive(Debug, Clone)]
pub struct Run {
    /// Which bus ran it (as given to [`record`]).
    pub bus: usize,
    /// The event's key (`None`: unkeyed).
    pub key: Option<String>,
    /// The event's `seq`.
    pub seq: u64,
    /// When the run started.
    pub start: Instant,
    /// When it ended (`None`: still running).
    pub end: Option<Instant>,
    /// Whether it succeeded.
    pub ok: bool,
}

/// What the listeners saw, across every bus of a test.
#[derive(Debug, Default)]
pub struct Journal {
    runs: Mutex<Vec<Run>>,
    in_flight: Mutex<HashMap<String, usize>>,
    overlaps: AtomicUsize,
    done: AtomicUsize,
    random: AtomicU64,
}

impl Journal {
    /// A pseudo-random pause of 0–3 ms (a split-mix sequence: no
    /// dependency, the same pauses on every run).
    fn pause(&self) -> Duration {
        let mut x = self
            .random
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Duration::from_micros((x ^ (x >> 31)) % 3001)
    }

    /// Starts a run; returns its index.
    fn start(&self, bus: usize, key: Option<String>, seq: u64) -> usize {
        if let Some(key) = &key {
            let mut in_flight = self.in_flight.lock().unwrap();
            let n = in_flight.entry(key.clone()).or_default();
            *n += 1;
            if *n > 1 {
                self.overlaps.fetch_add(1, Ordering::SeqCst);
            }
        }
        let mut runs = self.runs.lock().unwrap();
        runs.push(Run {
            bus,
            key,
            seq,
            start: Instant::now(),
            end: None,
            ok: false,
        });
        runs.len() - 1
    }

    fn end(&self, index: usize, ok: bool) {
        let key = {
            let mut runs = self.runs.lock().unwrap();
            runs[index].end = Some(Instant::now());
            runs[index].ok = ok;
            runs[index].key.clone()
        };
        if let Some(key) = key {
            *self.in_flight.lock().unwrap().get_mut(&key).unwrap() -= 1;
        }
        self.done.fetch_add(1, Ordering::SeqCst);
    }

    /// Times a key had two runs at once.
    pub fn overlaps(&self) -> usize {
        self.overlaps.load(Ordering::SeqCst)
    }

    /// Runs ended.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Every run so far, in the order they started.
    pub fn runs(&self) -> Vec<Run> {
        self.runs.lock().unwrap().clone()
    }

    /// Per key, the seqs in the order their runs started.
    pub fn seqs(&self) -> HashMap<String, Vec<u64>> {
        self.seqs_by(|run| Some(run.start))
    }

    /// Per key, the seqs in the order of `when`.
    pub fn seqs_by(&self, when: impl Fn(&Run) -> Option<Instant>) -> HashMap<String, Vec<u64>> {
        let mut runs = self.runs();
        runs.sort_by_key(|run| when(run));
        let mut by_key: HashMap<String, Vec<u64>> = HashMap::new();
        for run in runs {
            if let Some(key) = run.key {
                by_key.entry(key).or_default().push(run.seq);
            }
        }
        by_key
    }

    /// Keys whose runs did not start, or did not end, in the order
    /// `expected` gives for the key, with the seqs seen (by start, or by
    /// end when those were in order).
    pub fn out_of_order(&self, expected: impl Fn(&str) -> Vec<u64>) -> Vec<(String, Vec<u64>)> {
        let mut bad: Vec<_> = self
            .seqs_by(|run| Some(run.start))
            .into_iter()
            .chain(self.seqs_by(|run| run.end))
            .filter(|(key, seqs)| *seqs != expected(key))
            .collect();
        bad.sort();
        bad.dedup_by(|a, b| a.0 == b.0);
        bad
    }

    /// The seqs of the unkeyed runs, sorted.
    pub fn unkeyed(&self) -> Vec<u64> {
        let mut seqs: Vec<u64> = self
            .runs()
            .into_iter()
            .filter(|run| run.key.is_none())
            .map(|run| run.seq)
            .collect();
        seqs.sort_unstable();
        seqs
    }
}

/// The order of every key with `per_key` events: `0..per_key`, each once.
pub fn in_order(per_key: u64) -> impl Fn(&str) -> Vec<u64> {
    move |_| (0..per_key).collect()
}

/// Registers on `bus` a listener of [`TOPIC`] named `record` that records
/// its runs in `journal` as bus `name`, pausing 0–3 ms each;
/// `fails(key, seq, attempt)` says which runs fail (attempt counts from 1).
///
/// # Panics
///
/// When the listener cannot be registered, or a payload is not an
/// [`event`]'s.
pub fn record(
    bus: &EventBus,
    name: usize,
    journal: &Arc<Journal>,
    fails: impl Fn(Option<&str>, u64, usize) -> bool + Send + Sync + 'static,
) {
    let journal = Arc::clone(journal);
    let fails = Arc::new(fails);
    bus.on_named("record", TOPIC, move |ctx| {
        let payload = ctx.payload().to_json().expect("a json payload");
        let key = payload["key"].as_str().map(str::to_owned);
        let seq = payload["seq"].as_u64().expect("a seq");
        let attempt = journal
            .runs()
            .iter()
            .filter(|run| run.key == key && run.seq == seq)
            .count()
            + 1;
        let fail = fails(key.as_deref(), seq, attempt);
        let index = journal.start(name, key, seq);
        let pause = journal.pause();
        let journal = Arc::clone(&journal);
        async move {
            tokio::time::sleep(pause).await;
            journal.end(index, !fail);
            if fail { Err("declined".into()) } else { Ok(()) }
        }
    })
    .expect("listener registered");
}

/// Waits (at most [`LIMIT`]) until `runs` runs ended.
///
/// # Panics
///
/// When they did not, with how many did.
pub async fn until_done(journal: &Journal, runs: usize) {
    assert!(
        eventually(LIMIT, || async { journal.done() >= runs }).await,
        "{} of {runs} runs done",
        journal.done()
    );
}

/// Waits for the buses to go idle and `store`'s backlog to empty, then
/// closes the buses.
///
/// # Panics
///
/// When a delivery stays unsettled past [`LIMIT`], or a bus fails to
/// close.
pub async fn close(buses: Vec<EventBus>, store: &impl EventQueue) {
    for bus in &buses {
        within(LIMIT, "idle", bus.wait_for_idle()).await;
    }
    until_drained(LIMIT, store).await;
    for bus in buses {
        within(LIMIT, "close", bus.close()).await.unwrap();
    }
}

/// Checks that `keys` keys ran, each one run at a time, their `per_key`
/// events each started and ended once, in order.
///
/// # Panics
///
/// When a key ran twice at once, out of order, or not at all.
pub fn assert_each_key_in_order(journal: &Journal, keys: usize, per_key: u64) {
    assert_eq!(journal.overlaps(), 0, "a key ran twice at once");
    assert_eq!(journal.out_of_order(in_order(per_key)), Vec::new());
    assert_eq!(journal.seqs().len(), keys, "every key ran");
}

/// A bus of `workers` over `store`, polling every 100 ms.
///
/// # Panics
///
/// When the bus cannot be built.
pub fn bus_over<S: EventStore + Clone + 'static>(store: &S, workers: usize) -> EventBus {
    EventBus::builder()
        .store(store.clone())
        .workers(workers)
        .poll_wait(Duration::from_millis(100))
        .build()
        .expect("bus")
}
