//! Per-key ordering (`ordered_by_key`): events with the same `soiree.key`
//! run one at a time, in stream order, with one bus of many workers and
//! with two store handles of the group, through redeliveries and past a
//! dead letter, on one server and on a 3-server cluster; unkeyed events
//! and other keys are not held back. Without
//! the option the same load runs keys' events at once, which shows the
//! checks can fail.

mod support;

use std::sync::Arc;
use std::time::Duration;

use soiree::{EventQueue, StoredEvent};
use soiree_nats::{FailurePolicy, NatsStore, PROPERTY_KEY};
use soiree_test::ordering::{
    Journal, LIMIT, assert_each_key_in_order, bus_over, close, in_order, record, until_done,
};
use soiree_test::wait::within;
use support::{ONE_AT_A_TIME, builder};

const KEYS: usize = 8;
const PER_KEY: u64 = 15;
const UNKEYED: u64 = 20;
const PARTITIONS: u16 = 4;

fn event(key: Option<&str>, seq: u64) -> StoredEvent {
    soiree_test::ordering::event(PROPERTY_KEY, key, seq)
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

const ALL_RUNS: usize = KEYS * PER_KEY as usize + UNKEYED as usize;

/// Every key's events ran one at a time, in order, and every unkeyed
/// event ran.
fn assert_in_order(journal: &Journal) {
    assert_each_key_in_order(journal, KEYS, PER_KEY);
    assert_eq!(journal.unkeyed(), (0..UNKEYED).collect::<Vec<_>>());
}

/// One bus of 8 workers over a store with `partitions`.
async fn one_bus(url: &str, partitions: u16) -> Arc<Journal> {
    let store = store(url, "onebus", partitions).await;
    enqueue_all(&store).await;
    let bus = bus_over(&store, 8);
    let journal = Arc::new(Journal::default());
    record(&bus, 0, &journal, |_, _, _| false);
    bus.start().unwrap();
    until_done(&journal, ALL_RUNS).await;
    close(vec![bus], &store).await;
    journal
}

/// A bus of 4 workers over each of two handles of the group: every key's
/// events run one at a time, in order, across both.
async fn two_handles_run_each_key_in_order(first: &NatsStore, second: &NatsStore) {
    enqueue_all(first).await;
    let journal = Arc::new(Journal::default());
    let buses = vec![bus_over(first, 4), bus_over(second, 4)];
    for (name, bus) in buses.iter().enumerate() {
        record(bus, name, &journal, |_, _, _| false);
        bus.start().unwrap();
    }
    until_done(&journal, ALL_RUNS).await;
    close(buses, first).await;
    assert_in_order(&journal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bus_runs_each_keys_events_one_at_a_time_in_order() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    let journal = one_bus(&server.url(), PARTITIONS).await;
    assert_in_order(&journal);
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
    two_handles_run_each_key_in_order(&first, &second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_option_keys_events_overlap() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    let journal = one_bus(&server.url(), 0).await;
    assert!(
        journal.overlaps() > 0 || !journal.out_of_order(in_order(PER_KEY)).is_empty(),
        "8 workers ran every key's events one at a time in order without the option: the ordering checks cannot fail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_of_the_group_share_the_partitions_in_order() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    let first = store(&server.url(), "twohandles", PARTITIONS).await;
    let second = store(&server.url(), "twohandles", PARTITIONS).await;
    two_handles_run_each_key_in_order(&first, &second).await;
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
    let bus = bus_over(&store, 8);
    let journal = Arc::new(Journal::default());
    record(&bus, 0, &journal, |key, seq, attempt| {
        key == Some("k0") && seq == 3 && attempt <= 2
    });
    bus.start().unwrap();
    until_done(&journal, ALL_RUNS + 2).await;
    close(vec![bus], &store).await;
    assert_eq!(journal.overlaps(), 0, "a key ran twice at once");
    let expected = |key: &str| {
        if key == "k0" {
            [0, 1, 2, 3, 3].into_iter().chain(3..PER_KEY).collect()
        } else {
            (0..PER_KEY).collect()
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
    let bus = bus_over(&store, 8);
    let journal = Arc::new(Journal::default());
    record(&bus, 0, &journal, |key, seq, _| {
        key == Some("k0") && seq == 3
    });
    bus.start().unwrap();
    until_done(&journal, ALL_RUNS).await;
    close(vec![bus], &store).await;
    assert_each_key_in_order(&journal, KEYS, PER_KEY);
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
    record(&bus, 0, &journal, |_, _, _| false);
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
