//! `run_all` runs every check in sequence and reports what it skipped.

use std::sync::Arc;
use std::time::Duration;

use soiree::{EventStore, MemoryStore};
use soiree_test::conformance::{self, Check, Conformance, hostile};

const VISIBILITY: Duration = Duration::from_secs(2);

fn config() -> Conformance {
    Conformance {
        redelivery_after: Some(VISIBILITY),
        ..Conformance::default()
    }
}

fn memory() -> Arc<dyn EventStore> {
    Arc::new(MemoryStore::new())
}

fn memory_queue() -> Arc<dyn EventStore> {
    match MemoryStore::queue().with_visibility_timeout(VISIBILITY) {
        Ok(store) => Arc::new(store),
        Err(err) => panic!("a positive visibility timeout was rejected: {err}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_skips_only_the_checks_that_need_a_queue_without_one() {
    let report = config().run_all(|| async { memory() }).await;
    let skipped: Vec<Check> = report
        .skipped()
        .into_iter()
        .map(|(check, _)| check)
        .collect();
    let need_a_queue: Vec<Check> = Check::ALL
        .into_iter()
        .filter(|check| {
            check.name().starts_with("queue_")
                || check.name().starts_with("listeners_registered")
                // Delayed events wait in the store's queue.
                || *check == Check::CancelledDelayedEventsAreNeverDelivered
                // Snoozes are kept by the store's queue.
                || *check == Check::BusKeepsLongSnoozesInTheStore
        })
        .collect();
    assert_eq!(skipped, need_a_queue);
    assert_eq!(report.passed().len() + skipped.len(), Check::ALL.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_runs_every_check_with_a_queue() {
    let report = config().run_all(|| async { memory_queue() }).await;
    assert_eq!(report.skipped(), Vec::new());
    assert_eq!(report.passed(), Check::ALL.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_leaves_redelivery_out_unless_asked() {
    // The default visibility timeout (30 s) is too long for the redelivery
    // check, which is therefore opt-in.
    let report = conformance::run_all(|| async { Arc::new(MemoryStore::queue()) }).await;
    assert_eq!(
        report.skipped(),
        vec![(Check::QueueRedeliversUnacked, "redelivery_after is not set")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_run_all_runs_every_hostile_check() {
    hostile::run_all(|| async { memory_queue() }, &Conformance::default()).await;
}
