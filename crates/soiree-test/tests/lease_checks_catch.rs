//! The lease checks fail stores whose leases break their promises: each
//! test runs a check against a memory store whose leases have one
//! deliberate flaw, and expects the check's panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use soiree::{
    EventStore, LeaderLease, Lease, MemoryStore, Result, StoredEvent, StoredResult, async_trait,
};
use soiree_test::conformance::{self, Conformance};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// Grants every acquire, held or not.
    GrantsAlways,
    /// Renews and releases whatever holder and token it is given.
    IgnoresTheToken,
    /// Drops the progress at every grant.
    ForgetsProgress,
}

#[derive(Debug)]
struct Flawed {
    inner: MemoryStore,
    flaw: Flaw,
    tokens: AtomicU64,
}

fn flawed(flaw: Flaw) -> Arc<dyn EventStore> {
    Arc::new(Flawed {
        inner: MemoryStore::new(),
        flaw,
        tokens: AtomicU64::new(1_000),
    })
}

#[async_trait]
impl EventStore for Flawed {
    async fn save_event(&self, event: &StoredEvent) -> Result<()> {
        self.inner.save_event(event).await
    }

    async fn save_handler_result(&self, result: &StoredResult) -> Result<()> {
        self.inner.save_handler_result(result).await
    }

    fn leases(&self) -> Option<&dyn LeaderLease> {
        Some(self)
    }
}

#[async_trait]
impl LeaderLease for Flawed {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>> {
        if self.flaw == Flaw::GrantsAlways {
            let token = self.tokens.fetch_add(1, Ordering::SeqCst);
            return Ok(Some(Lease::new(name, holder, token, None)));
        }
        let granted = self.inner.acquire(name, holder, ttl).await?;
        Ok(match (self.flaw, granted) {
            (Flaw::ForgetsProgress, Some(lease)) => {
                Some(Lease::new(lease.name, lease.holder, lease.token, None))
            }
            (_, granted) => granted,
        })
    }

    async fn renew(&self, lease: &Lease, ttl: Duration, progress: Option<i64>) -> Result<bool> {
        if self.flaw == Flaw::IgnoresTheToken {
            return Ok(true);
        }
        self.inner.renew(lease, ttl, progress).await
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        if self.flaw == Flaw::IgnoresTheToken {
            return Ok(true);
        }
        LeaderLease::release(&self.inner, lease).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "racing acquires granted")]
async fn catches_a_lease_granted_twice() {
    conformance::lease_has_one_holder_at_a_time(
        flawed(Flaw::GrantsAlways),
        &Conformance::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "renewed the lease")]
async fn catches_a_renewal_by_another_holder() {
    conformance::lease_renew_and_release_only_by_the_holder(
        flawed(Flaw::IgnoresTheToken),
        &Conformance::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "lost the recorded progress")]
async fn catches_a_takeover_that_forgets_progress() {
    conformance::lease_is_taken_over_only_after_expiry(
        flawed(Flaw::ForgetsProgress),
        &Conformance::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faithful_store_passes() {
    let config = Conformance::default();
    let fresh = || -> Arc<dyn EventStore> { Arc::new(MemoryStore::new()) };
    let outcomes = [
        conformance::lease_has_one_holder_at_a_time(fresh(), &config).await,
        conformance::lease_renew_and_release_only_by_the_holder(fresh(), &config).await,
        conformance::lease_is_taken_over_only_after_expiry(fresh(), &config).await,
    ];
    for outcome in outcomes {
        assert_eq!(outcome, conformance::Outcome::Passed);
    }
}
