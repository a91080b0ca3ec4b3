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
        // Not CLAIM itself: the redelivery check long-polls for `redelivery_after`,
        // and a pull request expiring at the very instant the claim timeout
        // redelivers seems to be counted, on the R3 cluster (nats-server
        // 2.9.10), as a delivery that never reached the consumer (a count of 3
        // where 2 was due, twice in CI-like runs). Not yet explained: noted on
        // issue 20 as an open defect; offset here so the check tests redelivery.
        redelivery_after: Some(CLAIM + Duration::from_millis(500)),
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

/// Delayed events and unique keys are not in this store yet (issue 21).
const LACKS: [Ability; 3] = [
    Ability::Scheduling,
    Ability::UniqueKeys,
    Ability::SharedLimits,
];

// One check at a time (`support::ONE_AT_A_TIME`): each starts its own
// nats-server, and with thirty of them at once on two cores
// `queue_redelivers_unacked` once saw a delivery count of 3 where 2 was
// due (the server counted a redelivery that did not reach this consumer
// within the claim timeout; not reproduced alone, and not yet explained:
// see the notes).
soiree_test::conformance_suite! {
    setup: { let _one = ONE_AT_A_TIME.lock().await; let server = server_or_skip!(); },
    store: store_in(&server.url(), "soiree", "soiree", 1).await,
    lacks: [Scheduling, UniqueKeys, SharedLimits],
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
