//! Per-key ordering (`ordered_by_key`) on both databases: events with the
//! same `soiree.key` run one at a time, in log order, with one bus of many
//! workers, with two consumers of the group, and through the retry table;
//! other keys and unkeyed events are not held back. Without the option the
//! same load runs out of order, which shows the checks can fail.

mod support;

use std::sync::Arc;
use std::time::Duration;

use soiree::{EventQueue, EventStore, StoredEvent};
use soiree_sql::{PROPERTY_KEY, SqlDeadLetter};
use soiree_test::ordering::{
    Journal, LIMIT, Run, assert_each_key_in_order, bus_over, close, in_order, record, until_done,
};
use support::within;
const KEYS: usize = 10;
const PER_KEY: u64 = 30;

/// What the tests need of a store beyond the soiree traits.
#[soiree::async_trait]
trait Store: EventStore + EventQueue + Clone + 'static {
    async fn letters(&self) -> Vec<SqlDeadLetter>;
}

macro_rules! store {
    ($store:ty) => {
        #[soiree::async_trait]
        impl Store for $store {
            async fn letters(&self) -> Vec<SqlDeadLetter> {
                within(LIMIT, "dead letters", self.sql_dead_letters(None, 100))
                    .await
                    .unwrap()
                    .items
            }
        }
    };
}
#[cfg(feature = "postgres")]
store!(soiree_sql::PostgresStore);
#[cfg(feature = "sqlite")]
store!(soiree_sql::SqliteStore);

fn event(key: Option<&str>, seq: u64) -> StoredEvent {
    soiree_test::ordering::event(PROPERTY_KEY, key, seq)
}

/// Appends events one at a time (so that the log holds them in this order).
async fn enqueue_all(store: &impl Store, events: impl IntoIterator<Item = StoredEvent>) {
    for event in events {
        within(LIMIT, "enqueue", store.enqueue(&event))
            .await
            .unwrap();
    }
}

/// `KEYS` keys × `PER_KEY` events, interleaved: seq 0 of every key, then seq 1…
fn interleaved() -> Vec<StoredEvent> {
    (0..PER_KEY)
        .flat_map(|seq| (0..KEYS).map(move |k| event(Some(&format!("k{k}")), seq)))
        .collect()
}

/// Test 1: one bus with 8 workers over `store`; returns what ran.
async fn one_bus(store: impl Store) -> Arc<Journal> {
    enqueue_all(&store, interleaved()).await;
    let bus = bus_over(&store, 8);
    let journal = Arc::new(Journal::default());
    record(&bus, 0, &journal, |_, _, _| false);
    bus.start().unwrap();
    until_done(&journal, KEYS * PER_KEY as usize).await;
    close(vec![bus], &store).await;
    journal
}

/// Without the option, the same load breaks the order (or runs a key twice
/// at once) in at least one of a few runs: the checks above can fail.
async fn unordered_breaks_the_order<S: Store, F: std::future::Future<Output = S>>(
    mut store: impl FnMut() -> F,
) {
    let mut seen = Vec::new();
    for _ in 0..3 {
        let journal = one_bus(store().await).await;
        let broken = journal.out_of_order(in_order(PER_KEY)).len();
        let overlaps = journal.overlaps();
        seen.push((broken, overlaps));
        if broken > 0 || overlaps > 0 {
            eprintln!("without ordered_by_key: {broken} keys out of order, {overlaps} overlaps");
            return;
        }
    }
    panic!("without ordered_by_key the order held in every run: {seen:?}");
}

/// Test 2: two consumers (two stores, two buses) of one group.
async fn two_consumers(first: impl Store, second: impl Store) {
    enqueue_all(&first, interleaved()).await;
    let journal = Arc::new(Journal::default());
    let buses = vec![bus_over(&first, 4), bus_over(&second, 4)];
    for (name, bus) in buses.iter().enumerate() {
        record(bus, name, &journal, |_, _, _| false);
        bus.start().unwrap();
    }
    until_done(&journal, KEYS * PER_KEY as usize).await;
    close(buses, &first).await;
    assert_each_key_in_order(&journal, KEYS, PER_KEY);
    let by_second = journal.runs().iter().filter(|run| run.bus == 1).count();
    assert!(
        (1..KEYS * PER_KEY as usize).contains(&by_second),
        "both consumers took part: {by_second} runs by the second"
    );
}

/// Test 3: the first event of key "a" fails twice (to the retry table) and
/// then succeeds; the later events of "a" run after it, those of "b" do not
/// wait for it.
async fn redelivered_event_holds_back_its_key(store: impl Store) {
    let events: Vec<StoredEvent> = (0..4)
        .flat_map(|seq| [event(Some("a"), seq), event(Some("b"), seq)])
        .collect();
    enqueue_all(&store, events).await;
    let bus = bus_over(&store, 4);
    let journal = Arc::new(Journal::default());
    record(&bus, 0, &journal, |key, seq, attempt| {
        key == Some("a") && seq == 0 && attempt <= 2
    });
    bus.start().unwrap();
    until_done(&journal, 10).await;
    close(vec![bus], &store).await;
    assert!(store.letters().await.is_empty());
    let mut runs = journal.runs();
    runs.sort_by_key(|run| run.start);
    let a: Vec<&Run> = runs
        .iter()
        .filter(|r| r.key.as_deref() == Some("a"))
        .collect();
    assert_eq!(
        a.iter().map(|r| (r.seq, r.ok)).collect::<Vec<_>>(),
        [
            (0, false),
            (0, false),
            (0, true),
            (1, true),
            (2, true),
            (3, true)
        ],
    );
    for pair in a.windows(2) {
        assert!(pair[1].start >= pair[0].end.unwrap(), "{pair:?}");
    }
    let a0_done = a[2].start;
    let b: Vec<&Run> = runs
        .iter()
        .filter(|r| r.key.as_deref() == Some("b"))
        .collect();
    assert_eq!(b.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert!(
        b.iter().all(|r| r.end.unwrap() < a0_done),
        "b waited for a: {b:?}, a0 succeeded at {a0_done:?}"
    );
    assert_eq!(journal.overlaps(), 0);
}

/// A dead-lettered event no longer holds back its key.
async fn dead_letter_releases_its_key(store: impl Store) {
    let events: Vec<StoredEvent> = (0..3).map(|seq| event(Some("a"), seq)).collect();
    enqueue_all(&store, events).await;
    let bus = bus_over(&store, 4);
    let journal = Arc::new(Journal::default());
    record(&bus, 0, &journal, |_, seq, _| seq == 0);
    bus.start().unwrap();
    // Two deliveries of a0 (max_deliveries 2), then a1 and a2.
    until_done(&journal, 4).await;
    close(vec![bus], &store).await;
    let dead = store.letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let mut runs = journal.runs();
    runs.sort_by_key(|run| run.start);
    assert_eq!(
        runs.iter().map(|r| (r.seq, r.ok)).collect::<Vec<_>>(),
        [(0, false), (0, false), (1, true), (2, true)],
    );
}

/// Test 4: unkeyed events flow with the option on, beside keyed ones.
async fn unkeyed_events_flow(store: impl Store) {
    let mut events: Vec<StoredEvent> = (0..50).map(|seq| event(None, seq)).collect();
    events.extend((0..10).map(|seq| event(Some("k"), seq)));
    enqueue_all(&store, events).await;
    let bus = bus_over(&store, 8);
    let journal = Arc::new(Journal::default());
    record(&bus, 0, &journal, |_, _, _| false);
    bus.start().unwrap();
    until_done(&journal, 60).await;
    close(vec![bus], &store).await;
    let runs = journal.runs();
    assert_eq!(runs.iter().filter(|r| r.key.is_none()).count(), 50);
    assert_eq!(journal.seqs()["k"], (0..10).collect::<Vec<_>>());
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use soiree_sql::{FailurePolicy, SqliteStore, SqliteStoreBuilder};
    use support::{TempDir, sqlite_builder};

    fn builder(path: &std::path::Path, consumer: &str) -> SqliteStoreBuilder {
        sqlite_builder(path, consumer)
            .ordered_by_key(true)
            .poll_interval(Duration::from_millis(20))
    }

    async fn store(dir: &TempDir) -> SqliteStore {
        builder(&dir.db(), "c1").build().await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_bus_runs_each_key_in_order() {
        let dir = TempDir::new();
        let journal = one_bus(store(&dir).await).await;
        assert_each_key_in_order(&journal, KEYS, PER_KEY);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_the_option_the_order_breaks() {
        let dir = TempDir::new();
        unordered_breaks_the_order(|| async {
            sqlite_builder(&dir.db(), "c1").build().await.unwrap()
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_consumers_run_each_key_in_order() {
        let dir = TempDir::new();
        let path = dir.db();
        let first = builder(&path, "c1").batch_size(7).build().await.unwrap();
        let second = builder(&path, "c2").batch_size(7).build().await.unwrap();
        two_consumers(first, second).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redelivered_event_holds_back_its_key_only() {
        let dir = TempDir::new();
        let store = builder(&dir.db(), "c1")
            .on_failure(FailurePolicy::Redeliver)
            .retry_backoff(Duration::from_millis(200))
            .build()
            .await
            .unwrap();
        redelivered_event_holds_back_its_key(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_letter_releases_its_key() {
        let dir = TempDir::new();
        let store = builder(&dir.db(), "c1")
            .on_failure(FailurePolicy::Redeliver)
            .retry_backoff(Duration::from_millis(20))
            .max_deliveries(2)
            .build()
            .await
            .unwrap();
        dead_letter_releases_its_key(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unkeyed_events_flow_with_the_option_on() {
        let dir = TempDir::new();
        unkeyed_events_flow(store(&dir).await).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::pg_or_skip;
    use soiree_sql::{FailurePolicy, PostgresStoreBuilder};
    use support::{PostgresServer, fresh_schema, pg_builder_in};

    fn builder(server: &PostgresServer, schema: &str, consumer: &str) -> PostgresStoreBuilder {
        pg_builder_in(server, schema, consumer)
            .ordered_by_key(true)
            .poll_interval(Duration::from_millis(20))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_bus_runs_each_key_in_order() {
        let server = pg_or_skip!();
        let store = builder(&server, &fresh_schema(), "c1")
            .build()
            .await
            .unwrap();
        let journal = one_bus(store).await;
        assert_each_key_in_order(&journal, KEYS, PER_KEY);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_the_option_the_order_breaks() {
        let server = pg_or_skip!();
        unordered_breaks_the_order(|| async {
            pg_builder_in(&server, &fresh_schema(), "c1")
                .build()
                .await
                .unwrap()
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_consumers_run_each_key_in_order() {
        let server = pg_or_skip!();
        let schema = fresh_schema();
        let first = builder(&server, &schema, "c1")
            .batch_size(7)
            .build()
            .await
            .unwrap();
        let second = builder(&server, &schema, "c2")
            .batch_size(7)
            .build()
            .await
            .unwrap();
        two_consumers(first, second).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redelivered_event_holds_back_its_key_only() {
        let server = pg_or_skip!();
        let store = builder(&server, &fresh_schema(), "c1")
            .on_failure(FailurePolicy::Redeliver)
            .retry_backoff(Duration::from_millis(200))
            .build()
            .await
            .unwrap();
        redelivered_event_holds_back_its_key(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_letter_releases_its_key() {
        let server = pg_or_skip!();
        let store = builder(&server, &fresh_schema(), "c1")
            .on_failure(FailurePolicy::Redeliver)
            .retry_backoff(Duration::from_millis(20))
            .max_deliveries(2)
            .build()
            .await
            .unwrap();
        dead_letter_releases_its_key(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unkeyed_events_flow_with_the_option_on() {
        let server = pg_or_skip!();
        let store = builder(&server, &fresh_schema(), "c1")
            .build()
            .await
            .unwrap();
        unkeyed_events_flow(store).await;
    }
}
