//! Per-key ordering (`ordered_by_key`): events with the same `soiree.key`
//! run one at a time, in stream order, with one bus of many workers and
//! with two store handles of the group, through redeliveries and past a
//! dead letter, on one server and on a 3-server cluster; unkeyed events
//! and other keys are not held back. Without
//! the option the same load runs keys' events at once, which shows the
//! checks can fail.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use soiree::{EventBus, EventQueue, StoredEvent};
use soiree_nats::{FailurePolicy, NatsStore, PROPERTY_KEY};
use soiree_test::wait::within;
use support::{ONE_AT_A_TIME, builder, eventually};

const LIMIT: Duration = Duration::from_secs(60);
const KEYS: usize = 8;
const PER_KEY: u64 = 15;
const UNKEYED: u64 = 20;
const PARTITIONS: u16 = 4;

fn event(key: Option<&str>, seq: u64) -> StoredEvent {
    let mut properties = serde_json::Map::new();
    if let Some(key) = key {
        properties.insert(PROPERTY_KEY.to_owned(), key.into());
    }
    StoredEvent {
        topic: "test.keyed".to_owned(),
        payload: json!({ "key": key, "seq": seq }),
        properties,
    }
}

/// `KEYS` keys × `PER_KEY` events, interleaved (seq 0 of every key, then
/// seq 1 …), and `UNKEYED` events among them, appended one at a time.
async fn enqueue_all(store: &NatsStore) {
    let mut unkeyed = 0;
    for seq in 0..PER_KEY {
        for k in 0..KEYS {
            let key = format!("k{k}");
            within(LIMIT, "enqueue", store.enqueue(&event(Some(&key), seq)))
                .await
                .unwrap();
        }
        if unkeyed < UNKEYED {
            within(LIMIT, "enqueue", store.enqueue(&event(None, unkeyed)))
                .await
                .unwrap();
            within(LIMIT, "enqueue", store.enqueue(&event(None, unkeyed + 1)))
                .await
                .unwrap();
            unkeyed += 2;
        }
    }
}

/// One run of the listener.
#[derive(Debug, Clone)]
struct Run {
    key: Option<String>,
    seq: u64,
    start: Instant,
    end: Option<Instant>,
}

/// What the listeners saw, across every bus of a test.
#[derive(Default)]
struct Journal {
    runs: Mutex<Vec<Run>>,
    in_flight: Mutex<HashMap<String, usize>>,
    /// Times a key had two runs at once.
    overlaps: AtomicUsize,
    done: AtomicUsize,
    random: AtomicU64,
}

impl Journal {
    /// A pseudo-random pause of 0–3 ms, so that runs finish out of order.
    fn pause(&self) -> Duration {
        let mut x = self
            .random
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Duration::from_micros((x ^ (x >> 31)) % 3001)
    }

    fn start(&self, key: Option<String>, seq: u64) -> usize {
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
            key,
            seq,
            start: Instant::now(),
            end: None,
        });
        runs.len() - 1
    }

    fn end(&self, index: usize) {
        let key = {
            let mut runs = self.runs.lock().unwrap();
            runs[index].end = Some(Instant::now());
            runs[index].key.clone()
        };
        if let Some(key) = key {
            *self.in_flight.lock().unwrap().get_mut(&key).unwrap() -= 1;
        }
        self.done.fetch_add(1, Ordering::SeqCst);
    }

    fn runs(&self) -> Vec<Run> {
        self.runs.lock().unwrap().clone()
    }

    /// Per key, the seqs in the order of `when`.
    fn seqs_by(&self, when: impl Fn(&Run) -> Option<Instant>) -> HashMap<String, Vec<u64>> {
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
    /// `expected` (per key).
    fn out_of_order(&self, expected: impl Fn(&str) -> Vec<u64>) -> Vec<(String, Vec<u64>)> {
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

    fn unkeyed(&self) -> Vec<u64> {
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

fn in_order(_key: &str) -> Vec<u64> {
    (0..PER_KEY).collect()
}

/// A listener recording its runs; `fails(key, seq, attempt)` says which
/// runs fail.
fn record(
    bus: &EventBus,
    journal: &Arc<Journal>,
    fails: impl Fn(Option<&str>, u64, usize) -> bool + Send + Sync + 'static,
) {
    let journal = Arc::clone(journal);
    let fails = Arc::new(fails);
    bus.on_named("record", "test.keyed", move |ctx| {
        let payload = ctx.payload().to_json().unwrap();
        let key = payload["key"].as_str().map(str::to_owned);
        let seq = payload["seq"].as_u64().unwrap();
        let attempt = journal
            .runs()
            .iter()
            .filter(|run| run.key == key && run.seq == seq)
            .count()
            + 1;
        let fail = fails(key.as_deref(), seq, attempt);
        let index = journal.start(key, seq);
        let pause = journal.pause();
        let journal = Arc::clone(&journal);
        async move {
            tokio::time::sleep(pause).await;
            journal.end(index);
            if fail { Err("declined".into()) } else { Ok(()) }
        }
    })
    .unwrap();
}

fn bus_over(store: &NatsStore, workers: usize) -> EventBus {
    EventBus::builder()
        .store(store.clone())
        .workers(workers)
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap()
}

async fn store(url: &str, prefix: &str, partitions: u16) -> NatsStore {
    within(
        LIMIT,
        "build",
        builder(url)
            .prefix(prefix)
            .group("ordered")
            .claim_timeout(Duration::from_secs(5))
            .ordered_by_key(partitions)
            .build(),
    )
    .await
    .unwrap()
}

async fn until_done(journal: &Journal, runs: usize) {
    assert!(
        eventually(LIMIT, || async {
            journal.done.load(Ordering::SeqCst) >= runs
        })
        .await,
        "{} of {runs} runs done",
        journal.done.load(Ordering::SeqCst)
    );
}

async fn close(buses: Vec<EventBus>, store: &NatsStore) {
    for bus in &buses {
        within(LIMIT, "idle", bus.wait_for_idle()).await;
    }
    assert!(
        eventually(LIMIT, || async {
            within(LIMIT, "backlog", store.backlog()).await.unwrap() == 0
        })
        .await,
        "every delivery settled"
    );
    for bus in buses {
        within(LIMIT, "close", bus.close()).await.unwrap();
    }
}

const ALL_RUNS: usize = KEYS * PER_KEY as usize + UNKEYED as usize;

/// One bus of 8 workers over a store with `partitions`.
async fn one_bus(url: &str, partitions: u16) -> Arc<Journal> {
    let store = store(url, "onebus", partitions).await;
    enqueue_all(&store).await;
    let bus = bus_over(&store, 8);
    let journal = Arc::new(Journal::default());
    record(&bus, &journal, |_, _, _| false);
    bus.start().unwrap();
    until_done(&journal, ALL_RUNS).await;
    close(vec![bus], &store).await;
    journal
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bus_runs_each_keys_events_one_at_a_time_in_order() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    let journal = one_bus(&server.url(), PARTITIONS).await;
    assert_eq!(
        journal.overlaps.load(Ordering::SeqCst),
        0,
        "a key ran twice at once"
    );
    assert_eq!(journal.out_of_order(in_order), vec![]);
    assert_eq!(journal.unkeyed(), (0..UNKEYED).collect::<Vec<_>>());
    assert_eq!(journal.runs().len(), ALL_RUNS, "each event ran once");
}

/// The same on a 3-server cluster, every stream with 3 replicas, two
/// handles connected to the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_each_keys_events_run_one_at_a_time_in_order() {
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = cluster_or_skip!();
    let open = || {
        within(
            LIMIT,
            "build",
            builder(&cluster.url())
                .prefix("cluster")
                .group("ordered")
                .replicas(3)
                .claim_timeout(Duration::from_secs(5))
                .ordered_by_key(PARTITIONS)
                .build(),
        )
    };
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    enqueue_all(&first).await;
    let journal = Arc::new(Journal::default());
    let buses = vec![bus_over(&first, 4), bus_over(&second, 4)];
    for bus in &buses {
        record(bus, &journal, |_, _, _| false);
        bus.start().unwrap();
    }
    until_done(&journal, ALL_RUNS).await;
    close(buses, &first).await;
    assert_eq!(
        journal.overlaps.load(Ordering::SeqCst),
        0,
        "a key ran twice at once"
    );
    assert_eq!(journal.out_of_order(in_order), vec![]);
    assert_eq!(journal.unkeyed(), (0..UNKEYED).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_option_keys_events_overlap() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    let journal = one_bus(&server.url(), 0).await;
    assert!(
        journal.overlaps.load(Ordering::SeqCst) > 0 || !journal.out_of_order(in_order).is_empty(),
        "8 workers ran every key's events one at a time in order without the option: the ordering checks cannot fail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_of_the_group_share_the_partitions_in_order() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    let first = store(&server.url(), "twohandles", PARTITIONS).await;
    let second = store(&server.url(), "twohandles", PARTITIONS).await;
    enqueue_all(&first).await;
    let journal = Arc::new(Journal::default());
    let buses = vec![bus_over(&first, 4), bus_over(&second, 4)];
    for bus in &buses {
        record(bus, &journal, |_, _, _| false);
        bus.start().unwrap();
    }
    until_done(&journal, ALL_RUNS).await;
    close(buses, &first).await;
    assert_eq!(
        journal.overlaps.load(Ordering::SeqCst),
        0,
        "a key ran twice at once"
    );
    assert_eq!(journal.out_of_order(in_order), vec![]);
    assert_eq!(journal.unkeyed(), (0..UNKEYED).collect::<Vec<_>>());
}

/// Under `Redeliver`, k0's seq 3 fails twice: it is delivered again (after
/// its NAK delay) before k0's seq 4, whatever else runs meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_failure_stays_in_front_of_its_key() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    let store = within(
        LIMIT,
        "build",
        builder(&server.url())
            .prefix("redeliver")
            .group("ordered")
            .claim_timeout(Duration::from_secs(5))
            .on_failure(FailurePolicy::Redeliver)
            .retry_delay(Duration::from_millis(100))
            .ordered_by_key(PARTITIONS)
            .build(),
    )
    .await
    .unwrap();
    enqueue_all(&store).await;
    let bus = EventBus::builder()
        .store(store.clone())
        .workers(8)
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let journal = Arc::new(Journal::default());
    record(&bus, &journal, |key, seq, attempt| {
        key == Some("k0") && seq == 3 && attempt <= 2
    });
    bus.start().unwrap();
    until_done(&journal, ALL_RUNS + 2).await;
    close(vec![bus], &store).await;
    assert_eq!(
        journal.overlaps.load(Ordering::SeqCst),
        0,
        "a key ran twice at once"
    );
    let expected = |key: &str| {
        if key == "k0" {
            [0, 1, 2, 3, 3].into_iter().chain(3..PER_KEY).collect()
        } else {
            in_order(key)
        }
    };
    assert_eq!(journal.out_of_order(expected), vec![]);
}

/// Under `DeadLetter`, k0's seq 3 always fails: it goes to the dead
/// letters once, and k0's later events run after it, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_lets_its_keys_next_event_through() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    let store = store(&server.url(), "deadletter", PARTITIONS).await;
    enqueue_all(&store).await;
    let bus = EventBus::builder()
        .store(store.clone())
        .workers(8)
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let journal = Arc::new(Journal::default());
    record(&bus, &journal, |key, seq, _| key == Some("k0") && seq == 3);
    bus.start().unwrap();
    until_done(&journal, ALL_RUNS).await;
    close(vec![bus], &store).await;
    assert_eq!(
        journal.overlaps.load(Ordering::SeqCst),
        0,
        "a key ran twice at once"
    );
    assert_eq!(journal.out_of_order(in_order), vec![]);
    let letters = within(
        LIMIT,
        "dead letters",
        soiree::Inspect::dead_letters(&store, &soiree::Query::oldest(10)),
    )
    .await
    .unwrap();
    assert_eq!(letters.items.len(), 1, "k0's seq 3 dead-lettered once");
}

/// A group without the option, on the same stream, takes the keyed events
/// the ordered handle published to the partitions, and the unkeyed ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_without_the_option_takes_keyed_events_too() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    let ordered = store(&server.url(), "mixed", PARTITIONS).await;
    let plain = within(
        LIMIT,
        "build",
        builder(&server.url())
            .prefix("mixed")
            .group("plain")
            .filter("test.*")
            .build(),
    )
    .await
    .unwrap();
    enqueue_all(&ordered).await;
    let bus = bus_over(&plain, 8);
    let journal = Arc::new(Journal::default());
    record(&bus, &journal, |_, _, _| false);
    bus.start().unwrap();
    until_done(&journal, ALL_RUNS).await;
    close(vec![bus], &plain).await;
    assert_eq!(journal.runs().len(), ALL_RUNS);
    assert_eq!(journal.unkeyed(), (0..UNKEYED).collect::<Vec<_>>());
}

#[tokio::test]
async fn too_many_partitions_are_refused() {
    let err = builder("nats://127.0.0.1:1")
        .ordered_by_key(soiree_nats::MAX_PARTITIONS + 1)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            soiree_nats::Error::InvalidOption {
                option: "ordered_by_key",
                ..
            }
        ),
        "{err}"
    );
}
