//! Leader leases: one holder at a time for a named lease, with an expiry
//! and a fencing token, kept by the store so that processes agree on it.

use std::time::Duration;

use async_trait::async_trait;

use crate::Result;

/// The longest name a lease may have, in bytes (lease names are keys and
/// primary keys).
pub const MAX_LEASE_NAME_LEN: usize = 200;

/// A lease held: what [`LeaderLease::acquire`] grants, and what the holder
/// passes back to renew or release it.
///
/// The `token` fences the holder: every grant of a name has a higher token
/// than the grants before it, and renew and release succeed only with the
/// token of the current grant, so a holder whose lease lapsed and was taken
/// over cannot act as if it still held it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The lease's name.
    pub name: String,
    /// Who holds it.
    pub holder: String,
    /// The fencing token of this grant.
    pub token: u64,
    /// The number the holders of this name record with the lease
    /// ([`LeaderLease::renew`]), as the last one left it; `None` before
    /// any. Periodic events keep their last fired tick here (Unix ms), so
    /// that the next leader goes on from it.
    pub progress: Option<i64>,
}

impl Lease {
    /// A lease as a store grants it.
    pub fn new(
        name: impl Into<String>,
        holder: impl Into<String>,
        token: u64,
        progress: Option<i64>,
    ) -> Self {
        Self {
            name: name.into(),
            holder: holder.into(),
            token,
            progress,
        }
    }
}

/// Named leases with a time to live, held by one holder at a time: how the
/// processes of a bus elect a leader through their store (periodic events
/// fire only in the leader: [`EventBus::schedule`](crate::EventBus::schedule)).
///
/// A lease is granted to a holder when no one holds it or the holder's
/// own grant is renewed by acquiring again; otherwise only once the
/// current grant expired (its time to live passed without a renewal).
/// Expiry is measured on the store's clock where it has one (PostgreSQL,
/// Redis), on the process's clock otherwise (SQLite: the processes of one
/// machine; memory: tokio's clock, so a paused clock drives it); NATS
/// starts a grant at the server's timestamp of its write and ends it on
/// the process's clock (keep clocks in step).
/// A released lease keeps its token count and progress: the next grant
/// goes on from them.
///
/// A store that implements it also implements
/// [`EventStore::append_unique`](crate::EventStore::append_unique): a new
/// leader may fire again a tick its predecessor fired just before it died,
/// and the tick's unique key is what stores it once.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use soiree::{EventStore, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
/// let store = MemoryStore::new();
/// let leases = store.leases().expect("the memory store has leases");
/// let ttl = Duration::from_secs(10);
/// let held = leases.acquire("nightly-report", "host-a", ttl).await?.expect("free");
/// assert!(leases.acquire("nightly-report", "host-b", ttl).await?.is_none());
/// assert!(leases.renew(&held, ttl, Some(42)).await?);
/// assert!(leases.release(&held).await?);
/// let next = leases.acquire("nightly-report", "host-b", ttl).await?.expect("released");
/// assert!(next.token > held.token);
/// assert_eq!(next.progress, Some(42));
/// # Ok(()) }
/// ```
#[async_trait]
pub trait LeaderLease: Send + Sync {
    /// Grants the lease `name` to `holder` for `ttl` when it is free,
    /// expired, or held by `holder` already (a new grant, with a new
    /// token); `None` when another holder has it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for an empty
    /// name or holder, one longer than [`MAX_LEASE_NAME_LEN`], or a zero
    /// `ttl`; [`Error::Store`](crate::Error::Store) when the store cannot
    /// answer.
    ///
    /// # Cancel safety
    ///
    /// A cancelled call may or may not have granted the lease; the grant
    /// then lapses after `ttl`.
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>>;

    /// Extends `lease` to `ttl` from now, and records `progress` with it
    /// (`None` keeps what is recorded), while it is still this grant and
    /// not expired; `false` when it is not (taken over, released or
    /// lapsed): the holder has lost it and must acquire again.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// A cancelled call may or may not have extended the lease.
    async fn renew(&self, lease: &Lease, ttl: Duration, progress: Option<i64>) -> Result<bool>;

    /// Gives `lease` up at once, while it is still this grant; whether it
    /// was.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// A cancelled call may or may not have released it; it then lapses.
    async fn release(&self, lease: &Lease) -> Result<bool>;
}

/// Checks the arguments every store's lease operations take.
///
/// # Errors
///
/// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for an empty name
/// or holder, one longer than [`MAX_LEASE_NAME_LEN`] or holding a NUL, or
/// a zero `ttl`.
pub fn check_lease_args(name: &str, holder: &str, ttl: Duration) -> Result<()> {
    for (what, text) in [("name", name), ("holder", holder)] {
        if text.is_empty() || text.len() > MAX_LEASE_NAME_LEN || text.contains('\0') {
            return Err(crate::Error::InvalidConfig(format!(
                "a lease {what} must be 1 to {MAX_LEASE_NAME_LEN} bytes without NUL \
                 (got {} bytes)",
                text.len()
            )));
        }
    }
    if ttl.is_zero() {
        return Err(crate::Error::InvalidConfig(
            "a lease's time to live must be positive".into(),
        ));
    }
    Ok(())
}

/// A time to live in whole milliseconds, at least 1.
pub fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}
