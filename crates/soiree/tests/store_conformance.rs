//! The store conformance suite against the in-memory store, with and without
//! its queue: one test per check, so each failure names its check.

use std::sync::Arc;
use std::time::Duration;

use soiree::{EventStore, MemoryStore};
use soiree_test::conformance::{self, Check, Conformance, Outcome};

/// Short enough for the redelivery check to be quick, long enough that no
/// other check's deliveries time out on a loaded machine.
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

/// `check: [runtime attribute], outcome without a queue, outcome with one;`
macro_rules! conformance_tests {
    ($($check:ident: [$($runtime:tt)*], $plain:expr, $queued:expr;)*) => {
        mod memory {
            use super::*;
            $(
                #[$($runtime)*]
                async fn $check() {
                    let outcome = conformance::$check(memory(), &config()).await;
                    assert_eq!(outcome, $plain);
                }
            )*
        }

        mod memory_queue {
            use super::*;
            $(
                #[$($runtime)*]
                async fn $check() {
                    let outcome = conformance::$check(memory_queue(), &config()).await;
                    assert_eq!(outcome, $queued);
                }
            )*
        }
    };
}

const PASSED: Outcome = Outcome::Passed;
const NO_QUEUE: Outcome = Outcome::Skipped("the store has no queue");
const NO_SCHEDULING: Outcome =
    Outcome::Skipped("the store's queue does not schedule delayed events");

conformance_tests! {
    saved_events_read_back_identical: [tokio::test], PASSED, PASSED;
    event_history_pages_cover_all_events: [tokio::test], PASSED, PASSED;
    handler_results_read_back: [tokio::test], PASSED, PASSED;
    dedup_is_scoped_per_event_and_handler: [tokio::test], PASSED, PASSED;
    queue_round_trip: [tokio::test], NO_QUEUE, PASSED;
    queue_is_fifo_for_one_consumer: [tokio::test], NO_QUEUE, PASSED;
    queue_dequeue_respects_max: [tokio::test], NO_QUEUE, PASSED;
    queue_empty_dequeue_returns_nothing: [tokio::test], NO_QUEUE, PASSED;
    queue_ack_removes_from_backlog: [tokio::test], NO_QUEUE, PASSED;
    queue_unacked_stays_in_backlog: [tokio::test], NO_QUEUE, PASSED;
    queue_redelivers_unacked: [tokio::test], NO_QUEUE, PASSED;
    bus_delivers_each_event_once: [tokio::test(flavor = "multi_thread", worker_threads = 2)], PASSED, PASSED;
    bus_reports_listener_errors: [tokio::test(flavor = "multi_thread", worker_threads = 2)], PASSED, PASSED;
    unserializable_payload_persists_nothing: [tokio::test(flavor = "multi_thread", worker_threads = 2)], PASSED, PASSED;
    bus_skips_listeners_that_already_succeeded: [tokio::test(flavor = "multi_thread", worker_threads = 2)], PASSED, PASSED;
    queue_carries_events_between_buses: [tokio::test(flavor = "multi_thread", worker_threads = 2)], NO_QUEUE, PASSED;
    // Time and flow control: not in `Check::ALL` yet.
    queue_holds_delayed_events_until_due: [tokio::test], NO_SCHEDULING, PASSED;
    cancelled_delayed_events_are_never_delivered: [tokio::test], NO_SCHEDULING, PASSED;
    bus_delivers_delayed_events_when_due: [tokio::test(flavor = "multi_thread", worker_threads = 2)], PASSED, PASSED;
    bus_reruns_snoozed_listeners: [tokio::test(flavor = "multi_thread", worker_threads = 2)], PASSED, PASSED;
    append_unique_keeps_one_event_per_key: [tokio::test(flavor = "multi_thread", worker_threads = 2)], PASSED, PASSED;
    bus_emits_a_unique_key_once: [tokio::test(flavor = "multi_thread", worker_threads = 2)], PASSED, PASSED;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_each_run_every_event() {
    let first = match MemoryStore::queue().with_visibility_timeout(VISIBILITY) {
        Ok(store) => store,
        Err(err) => panic!("a positive visibility timeout was rejected: {err}"),
    };
    let second: Arc<dyn EventStore> = Arc::new(first.in_group("second"));
    let outcome =
        conformance::groups_each_run_every_event(Arc::new(first), second, &config()).await;
    assert_eq!(outcome, Outcome::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_need_a_queue() {
    let first = MemoryStore::new();
    let second: Arc<dyn EventStore> = Arc::new(first.in_group("second"));
    let outcome =
        conformance::groups_each_run_every_event(Arc::new(first), second, &config()).await;
    assert_eq!(outcome, NO_QUEUE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_skips_only_the_queue_checks_without_a_queue() {
    let report = config().run_all(|| async { memory() }).await;
    let skipped: Vec<Check> = report
        .skipped()
        .into_iter()
        .map(|(check, _)| check)
        .collect();
    let queue_checks: Vec<Check> = Check::ALL
        .into_iter()
        .filter(|check| check.name().starts_with("queue_"))
        .collect();
    assert_eq!(skipped, queue_checks);
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
