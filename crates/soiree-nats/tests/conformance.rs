//! The store conformance suite and the hostile-row suite from soiree-test
//! against NatsStore: each check on its own single server, and the whole
//! suite on a 3-server cluster with R3 streams.

mod support;

use std::sync::Arc;
use std::time::Duration;

use soiree::EventStore;
use soiree_test::conformance::{self, Conformance, Outcome, hostile};
use support::builder;

/// The claim timeout (AckWait), which is also how soon an unacknowledged
/// delivery comes back.
const CLAIM: Duration = Duration::from_secs(1);

fn config() -> Conformance {
    Conformance {
        redelivery_after: Some(CLAIM),
        ..Conformance::default()
    }
}

async fn store_in(url: &str, prefix: &str, group: &str, replicas: usize) -> Arc<dyn EventStore> {
    Arc::new(
        builder(url)
            .prefix(prefix)
            .group(group)
            .replicas(replicas)
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
            let store = store_in(&server.url(), "soiree", "soiree", 1).await;
            let outcome = conformance::$check(store, &config()).await;
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
    let first = store_in(&server.url(), "groups", "first", 1).await;
    let second = store_in(&server.url(), "groups", "second", 1).await;
    let outcome = conformance::groups_each_run_every_event(first, second, &config()).await;
    assert_eq!(outcome, Outcome::Passed);
}

/// Every check the suite has, so that a check added later is not missed here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_passes() {
    let server = server_or_skip!();
    let mut n = 0;
    let url = server.url();
    let report = config()
        .run_all(|| {
            n += 1;
            let prefix = format!("check{n}");
            let url = url.clone();
            async move { store_in(&url, &prefix, "soiree", 1).await }
        })
        .await;
    for (check, outcome) in &report.outcomes {
        assert_eq!(*outcome, Outcome::Passed, "{check}");
    }
    assert_eq!(report.outcomes.len(), conformance::Check::ALL.len());
}

/// The whole suite on a 3-server cluster, every stream with 3 replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_passes_on_a_cluster() {
    let cluster = cluster_or_skip!();
    let mut n = 0;
    let url = cluster.url();
    let report = config()
        .run_all(|| {
            n += 1;
            let prefix = format!("r3check{n}");
            let url = url.clone();
            async move { store_in(&url, &prefix, "soiree", 3).await }
        })
        .await;
    for (check, outcome) in &report.outcomes {
        assert_eq!(*outcome, Outcome::Passed, "{check}");
    }
    assert_eq!(report.outcomes.len(), conformance::Check::ALL.len());
}

/// Every hostile check, each under its own prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_hostile_suite_passes() {
    let server = server_or_skip!();
    let mut n = 0;
    let url = server.url();
    hostile::run_all(
        || {
            n += 1;
            let prefix = format!("hostile{n}");
            let url = url.clone();
            async move { store_in(&url, &prefix, "soiree", 1).await }
        },
        &Conformance::default(),
    )
    .await;
}
