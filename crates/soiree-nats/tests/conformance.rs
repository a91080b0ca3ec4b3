//! The store conformance suite and the hostile-row suite from soiree-test
//! against NatsStore: each check on its own single server, and the whole
//! suite on a 3-server cluster with R3 streams.

mod support;

use std::sync::Arc;
use std::time::Duration;

use soiree::EventStore;
use soiree_test::conformance::{self, Ability, Conformance};
use support::{ONE_AT_A_TIME, builder};

/// The claim timeout (AckWait), which is also how soon an unacknowledged
/// delivery comes back.
const CLAIM: Duration = Duration::from_secs(1);

fn config() -> Conformance {
    Conformance {
        // The redelivery check long-polls for as long as the claim timeout:
        // the store's long polls are shorter on the server (nats-server 2.9
        // miscounts a redelivery that meets a request as it expires; see
        // `puller::long_poll` and tests/redelivery_count.rs).
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

/// Store-side snoozes are not in this store yet (a NAK with a delay would
/// be the primitive, but JetStream counts it as a delivery).
const LACKS: [Ability; 1] = [Ability::Deferral];

// One check at a time (`support::ONE_AT_A_TIME`): each starts its own
// nats-server, and thirty of them at once on two cores time requests out.
soiree_test::conformance_suite! {
    setup: { let _one = ONE_AT_A_TIME.lock().await; let server = server_or_skip!(); },
    store: store_in(&server.url(), "soiree", "soiree", 1).await,
    lacks: [Deferral],
    groups: (
        store_in(&server.url(), "groups", "first", 1).await,
        store_in(&server.url(), "groups", "second", 1).await,
    ),
    config: config(),
}

/// The whole suite on a 3-server cluster, every stream with 3 replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_passes_on_a_cluster() {
    let _one = ONE_AT_A_TIME.lock().await;
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
        outcome.assert_expected(check.name(), &config(), &LACKS);
    }
    assert_eq!(report.outcomes.len(), conformance::Check::ALL.len());
}

/// The whole suite on one server with every store ordered by key (4
/// partitions): its events have no key, so they take the group's own
/// consumer, and what the option adds to dequeue, release and backlog
/// must change nothing for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_passes_ordered_by_key() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    let mut n = 0;
    let url = server.url();
    let report = config()
        .run_all(|| {
            n += 1;
            let prefix = format!("ordered{n}");
            let url = url.clone();
            async move {
                let store: Arc<dyn EventStore> = Arc::new(
                    builder(&url)
                        .prefix(prefix)
                        .claim_timeout(CLAIM)
                        .ordered_by_key(4)
                        .build()
                        .await
                        .unwrap(),
                );
                store
            }
        })
        .await;
    for (check, outcome) in &report.outcomes {
        outcome.assert_expected(check.name(), &config(), &LACKS);
    }
    assert_eq!(report.outcomes.len(), conformance::Check::ALL.len());
}
