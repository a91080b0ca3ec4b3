//! The store conformance suite from soiree-test against RedisStore: one test
//! per check, each on its own redis-server.

mod support;

use std::sync::Arc;
use std::time::Duration;

use soiree::EventStore;
use soiree_test::conformance::{self, Conformance, Outcome};
use support::{RedisServer, builder};

/// The claim timeout, which is also how soon an unacknowledged delivery
/// comes back.
const CLAIM: Duration = Duration::from_secs(1);

fn config() -> Conformance {
    Conformance {
        redelivery_after: Some(CLAIM),
        ..Conformance::default()
    }
}

async fn store(server: &RedisServer) -> Arc<dyn EventStore> {
    store_with_prefix(server, "soiree").await
}

async fn store_with_prefix(server: &RedisServer, prefix: &str) -> Arc<dyn EventStore> {
    store_in_group(server, prefix, "soiree").await
}

async fn store_in_group(server: &RedisServer, prefix: &str, group: &str) -> Arc<dyn EventStore> {
    Arc::new(
        builder(server, "conformance")
            .prefix(prefix)
            .group(group)
            .claim_timeout(CLAIM)
            .build()
            .await
            .unwrap(),
    )
}

macro_rules! conformance_tests {
    ($($check:ident)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let server = server_or_skip!();
            let outcome = conformance::$check(store(&server).await, &config()).await;
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
    let server = server_or_skip!();
    let first = store_in_group(&server, "groups", "first").await;
    let second = store_in_group(&server, "groups", "second").await;
    let outcome = conformance::groups_each_run_every_event(first, second, &config()).await;
    assert_eq!(outcome, Outcome::Passed);
}

/// Every check the suite has, so that a check added later is not missed here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_passes() {
    let server = server_or_skip!();
    // One server, so each check gets its own key prefix.
    let mut n = 0;
    let report = config()
        .run_all(|| {
            n += 1;
            let prefix = format!("check{n}");
            let server = &server;
            async move { store_with_prefix(server, &prefix).await }
        })
        .await;
    for (check, outcome) in &report.outcomes {
        assert_eq!(*outcome, Outcome::Passed, "{check}");
    }
    assert_eq!(report.outcomes.len(), conformance::Check::ALL.len());
}
