//! The store conformance suite from soiree-test against SqliteStore: one
//! test per check, each on its own database file.

#![cfg(feature = "sqlite")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use soiree::EventStore;
use soiree_test::conformance::{self, Conformance, Outcome};
use support::{TempDir, sqlite_builder};

const LEASE: Duration = Duration::from_secs(2);

fn config() -> Conformance {
    Conformance {
        // An abandoned delivery is kept for max_handler_time, then its lease expires.
        redelivery_after: Some(LEASE * 3),
        ..Conformance::default()
    }
}

async fn store(dir: &TempDir) -> Arc<dyn EventStore> {
    Arc::new(
        sqlite_builder(&dir.db(), "conformance")
            .lease_timeout(LEASE)
            .max_handler_time(LEASE)
            .build()
            .await
            .unwrap(),
    )
}

macro_rules! conformance_tests {
    ($($check:ident)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let dir = TempDir::new();
            let outcome = conformance::$check(store(&dir).await, &config()).await;
            assert_eq!(outcome, Outcome::Passed);
        }
    )*};
}

conformance_tests! {
    saved_events_read_back_identical
    event_history_pages_cover_all_events
    handler_results_read_back
    dedup_is_scoped_per_event_and_handler
    queue_round_trip
    queue_is_fifo_for_one_consumer
    queue_dequeue_respects_max
    queue_empty_dequeue_returns_nothing
    queue_ack_removes_from_backlog
    queue_unacked_stays_in_backlog
    queue_redelivers_unacked
    bus_delivers_each_event_once
    bus_reports_listener_errors
    unserializable_payload_persists_nothing
    bus_skips_listeners_that_already_succeeded
    queue_carries_events_between_buses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_each_run_every_event() {
    let dir = TempDir::new();
    let db = dir.db();
    let in_group = |group: &'static str| {
        sqlite_builder(&db, group)
            .group(group)
            .lease_timeout(LEASE)
            .max_handler_time(LEASE)
            .build()
    };
    let first: Arc<dyn EventStore> = Arc::new(in_group("first").await.unwrap());
    let second: Arc<dyn EventStore> = Arc::new(in_group("second").await.unwrap());
    let outcome = conformance::groups_each_run_every_event(first, second, &config()).await;
    assert_eq!(outcome, Outcome::Passed);
}

/// Every check the suite has, so that a check added later is not missed here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_passes() {
    let dir = TempDir::new();
    let report = config().run_all(|| store(&dir)).await;
    for (check, outcome) in &report.outcomes {
        assert_eq!(*outcome, Outcome::Passed, "{check}");
    }
    assert_eq!(report.outcomes.len(), conformance::Check::ALL.len());
}
