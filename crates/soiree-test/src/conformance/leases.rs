//! Checks of leader leases ([`LeaderLease`](soiree::LeaderLease)): one
//! holder at a time, takeover only after expiry, renew and release only
//! by the current grant, tokens that only grow, progress that carries
//! over. Stores without leases skip them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use soiree::{EventStore, LeaderLease, Lease};

use super::support::{ok, unique_id, within};
use super::{Conformance, Outcome};

const NO_LEASES: &str = super::Ability::Leases.missing();
/// Long enough that no check sees it lapse by accident.
const LONG: Duration = Duration::from_secs(600);
/// Short enough to wait for; long enough for two calls on a loaded machine.
const SHORT: Duration = Duration::from_secs(2);

async fn acquire(
    leases: &dyn LeaderLease,
    config: &Conformance,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Option<Lease> {
    ok(
        "acquire",
        within(config, "acquire", leases.acquire(name, holder, ttl)).await,
    )
}

/// Of holders racing for a free lease one gets it; while it is live no
/// one else does; its holder acquiring again gets a new grant with a
/// higher token, and the old grant's token no longer renews.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn lease_has_one_holder_at_a_time(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(leases) = store.leases() else {
        return Outcome::Skipped(NO_LEASES);
    };
    let name = unique_id("lease");
    let holders: Vec<String> = (0..8).map(|n| format!("holder-{n}")).collect();
    let answers = within(
        config,
        "racing acquires",
        join_all(holders.iter().map(|h| leases.acquire(&name, h, LONG))),
    )
    .await;
    let granted: Vec<Lease> = answers
        .into_iter()
        .filter_map(|answer| ok("acquire", answer))
        .collect();
    assert_eq!(
        granted.len(),
        1,
        "racing acquires granted {} leases",
        granted.len()
    );
    let held = &granted[0];
    assert_eq!(held.name, name, "the grant names another lease");
    assert_eq!(held.progress, None, "a new lease has progress");
    for holder in holders.iter().filter(|h| **h != held.holder) {
        assert!(
            acquire(leases, config, &name, holder, LONG).await.is_none(),
            "a live lease was granted to another holder"
        );
    }
    let again = acquire(leases, config, &name, &held.holder, LONG)
        .await
        .expect("the holder of a live lease could not acquire it again");
    assert!(again.token > held.token, "a new grant's token did not grow");
    assert!(
        !ok(
            "renew",
            within(config, "renew", leases.renew(held, LONG, None)).await
        ),
        "a superseded grant's token renewed the lease"
    );
    let other = unique_id("lease");
    assert!(
        acquire(leases, config, &other, "holder-x", LONG)
            .await
            .is_some(),
        "another lease name was refused"
    );
    Outcome::Passed
}

/// A lease is taken over once its time to live passed without a renewal,
/// not before; the new grant's token is higher and it carries the
/// progress recorded; the old holder can then neither renew nor release.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn lease_is_taken_over_only_after_expiry(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(leases) = store.leases() else {
        return Outcome::Skipped(NO_LEASES);
    };
    let name = unique_id("lease");
    let asked = Instant::now();
    let first = acquire(leases, config, &name, "first", SHORT)
        .await
        .expect("a free lease was refused");
    // Before the renewal: the store renews after this instant, so the
    // grant lives at least until `renewing + SHORT`, however slow the
    // answer.
    let renewing = Instant::now();
    assert!(
        ok(
            "renew",
            within(config, "renew", leases.renew(&first, SHORT, Some(7))).await
        ),
        "the holder could not renew its live lease"
    );
    let refused = acquire(leases, config, &name, "second", SHORT).await;
    // Only meaningful while the grant is surely live.
    if renewing.elapsed() < SHORT / 2 {
        assert!(refused.is_none(), "a live lease was taken over");
    }
    // Bounded: every quarter of the time to live, until the timeout.
    let second = loop {
        if let Some(lease) = acquire(leases, config, &name, "second", LONG).await {
            break lease;
        }
        assert!(
            asked.elapsed() < config.timeout,
            "an expired lease was not taken over within {:?}",
            config.timeout
        );
        tokio::time::sleep(SHORT / 4).await;
    };
    // Stores measure expiry on their own clocks, with millisecond
    // precision: allow that much.
    assert!(
        renewing.elapsed() + Duration::from_millis(50) >= SHORT,
        "a lease was taken over {:?} after its last renewal, before its time to live {SHORT:?}",
        renewing.elapsed()
    );
    assert!(
        second.token > first.token,
        "the takeover's token did not grow"
    );
    assert_eq!(
        second.progress,
        Some(7),
        "the takeover lost the recorded progress"
    );
    assert!(
        !ok(
            "renew",
            within(config, "renew", leases.renew(&first, LONG, Some(8))).await
        ),
        "the old holder renewed a lease taken over"
    );
    assert!(
        !ok(
            "release",
            within(config, "release", leases.release(&first)).await
        ),
        "the old holder released a lease taken over"
    );
    Outcome::Passed
}

/// Renew and release succeed only for the grant's holder and token;
/// progress given with a renewal is kept, none keeps it; a released lease
/// is granted at once to another holder, and released twice once.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn lease_renew_and_release_only_by_the_holder(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(leases) = store.leases() else {
        return Outcome::Skipped(NO_LEASES);
    };
    let name = unique_id("lease");
    let held = acquire(leases, config, &name, "owner", LONG)
        .await
        .expect("a free lease was refused");
    let mut impostor = held.clone();
    impostor.holder = "impostor".to_owned();
    let mut stale = held.clone();
    stale.token = held.token.saturating_sub(1);
    for (who, lease) in [("another holder", &impostor), ("a wrong token", &stale)] {
        assert!(
            !ok(
                "renew",
                within(config, "renew", leases.renew(lease, LONG, Some(99))).await
            ),
            "{who} renewed the lease"
        );
        assert!(
            !ok(
                "release",
                within(config, "release", leases.release(lease)).await
            ),
            "{who} released the lease"
        );
    }
    for progress in [Some(1_796_635_800_000), None] {
        assert!(
            ok(
                "renew",
                within(config, "renew", leases.renew(&held, LONG, progress)).await
            ),
            "the holder could not renew its lease"
        );
    }
    assert!(
        ok(
            "release",
            within(config, "release", leases.release(&held)).await
        ),
        "the holder could not release its lease"
    );
    assert!(
        !ok(
            "release",
            within(config, "release", leases.release(&held)).await
        ),
        "a lease was released twice"
    );
    let next = acquire(leases, config, &name, "successor", LONG)
        .await
        .expect("a released lease was not granted at once");
    assert!(
        next.token > held.token,
        "the next grant's token did not grow"
    );
    assert_eq!(
        next.progress,
        Some(1_796_635_800_000),
        "progress was not kept (or a renewal without progress erased it)"
    );
    Outcome::Passed
}
