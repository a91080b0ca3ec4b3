//! Compare-and-set on a 3-server cluster: concurrent writers that read the
//! same revision of a KV key must not all be stored (nats-server 2.9 checks
//! the expected revision only against replicated messages, so the store
//! adds a message id per revision read: see `Bucket::compare_and_set`).
//! Without that id, 8 concurrent takers of 3 slots all won here.

mod support;

use std::future::Future;
use std::time::Duration;

use futures::future::join_all;
use soiree::{EventStore, LeaderLease};
use support::{ONE_AT_A_TIME, builder};

const ROUNDS: usize = 10;
const TAKERS: usize = 8;
const LONG: Duration = Duration::from_secs(3600);

/// Awaits every taker at once, for at most 30 s; their answers.
async fn at_once<T>(takers: impl IntoIterator<Item = impl Future<Output = T>>) -> Vec<T> {
    tokio::time::timeout(Duration::from_secs(30), join_all(takers))
        .await
        .expect("the takers answer")
}

/// How many of `holders`, asking at once, were granted the lease `name`.
async fn grants(leases: &dyn LeaderLease, name: &str, holders: &[String]) -> usize {
    at_once(
        holders
            .iter()
            .map(|holder| leases.acquire(name, holder, LONG)),
    )
    .await
    .into_iter()
    .filter(|grant| grant.as_ref().unwrap().is_some())
    .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_takers_never_exceed_a_limit_or_share_a_lease_on_a_cluster() {
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = cluster_or_skip!();
    let store = builder(&cluster.url())
        .prefix("cas")
        .replicas(3)
        .build()
        .await
        .unwrap();
    let limits = store.limits().expect("the store shares limits");
    let leases = store.leases().expect("the store has leases");
    for round in 0..ROUNDS {
        // Even rounds take from a fresh key (revision 0), odd ones add 3
        // more places to the same key (a written revision).
        let key = format!("slots-{}", round / 2);
        let limit = if round % 2 == 0 { 3 } else { 6 };
        let holders: Vec<String> = (0..TAKERS).map(|n| format!("h{round}-{n}")).collect();
        let taken = at_once(
            holders
                .iter()
                .map(|holder| limits.acquire_slot(&key, limit, holder, LONG)),
        )
        .await;
        let won = taken.into_iter().filter(|t| *t.as_ref().unwrap()).count();
        assert_eq!(
            won, 3,
            "round {round}: {won} of {TAKERS} takers won 3 places"
        );

        let rate = format!("rate-{round}");
        let admitted = at_once((0..TAKERS).map(|_| limits.take_rate(&rate, 1, LONG)))
            .await
            .into_iter()
            .filter(|t| t.as_ref().unwrap().is_none())
            .count();
        assert_eq!(
            admitted, 1,
            "round {round}: a rate of 1 admitted {admitted}"
        );

        let name = format!("lease-{round}");
        let granted = grants(leases, &name, &holders).await;
        assert_eq!(
            granted, 1,
            "round {round}: a lease was granted {granted} times"
        );

        // A takeover: every candidate reads the same lapsed grant (a
        // written revision) and writes over it.
        let name = format!("lapsed-{round}");
        let short = Duration::from_millis(200);
        assert!(
            leases
                .acquire(&name, "first", short)
                .await
                .unwrap()
                .is_some()
        );
        tokio::time::sleep(short * 2).await;
        let granted = grants(leases, &name, &holders).await;
        assert_eq!(
            granted, 1,
            "round {round}: a lapsed lease was taken {granted} times"
        );
    }
}
