//! Leader leases ([`soiree::LeaderLease`]): a row per lease name in
//! `soiree_leader_leases`, granted, renewed and released by one statement
//! each, so that the check and the write are atomic across processes.
//!
//! A row with an expiry rather than a PostgreSQL advisory lock: an
//! advisory lock belongs to one connection, so the leader would pin a
//! pooled connection for as long as it leads (and lose the lock silently
//! when the pool recycles it, or be unable to take one behind a
//! transaction-pooling proxy); a lock that a hung process keeps never
//! expires; and a lock carries neither a fencing token nor the last tick
//! fired. The row does all three, the same on SQLite and PostgreSQL.
//! PostgreSQL measures expiry on the server's clock; SQLite, which has no
//! server, on the writing process's clock (the processes of one machine).

use std::time::Duration;

use async_trait::async_trait;
use soiree::Lease;
use soiree::kit::{check_lease_args, ttl_ms};

use crate::backend::Backend;
use crate::core::Core;
use crate::{Error, Result};

/// The statements of leader leases, per database.
#[async_trait]
pub trait Leases {
    /// Grants `name` to `holder` until `ttl_ms` from now when free, expired
    /// or held by `holder`: the new token and the recorded progress.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<(i64, Option<i64>)>>;
    /// Extends the grant `(name, holder, token)` while unexpired, recording
    /// `progress` when given; whether it did.
    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        token: i64,
        ttl_ms: i64,
        progress: Option<i64>,
    ) -> Result<bool>;
    /// Expires the grant `(name, holder, token)` now, while unexpired;
    /// whether it did.
    async fn release_lease(&self, name: &str, holder: &str, token: i64) -> Result<bool>;
}

fn token_of(lease: &Lease) -> Result<i64> {
    i64::try_from(lease.token).map_err(|_| {
        Error::Event(soiree::Error::store(
            "a lease token past i64: not this store's",
        ))
    })
}

impl<B: Backend> Core<B> {
    pub(crate) async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> soiree::Result<Option<Lease>> {
        check_lease_args(name, holder, ttl)?;
        let granted = self
            .backend
            .acquire_lease(name, holder, ttl_ms(ttl))
            .await?;
        Ok(granted.map(|(token, progress)| {
            Lease::new(name, holder, u64::try_from(token).unwrap_or(0), progress)
        }))
    }

    pub(crate) async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        progress: Option<i64>,
    ) -> soiree::Result<bool> {
        check_lease_args(&lease.name, &lease.holder, ttl)?;
        Ok(self
            .backend
            .renew_lease(
                &lease.name,
                &lease.holder,
                token_of(lease)?,
                ttl_ms(ttl),
                progress,
            )
            .await?)
    }

    pub(crate) async fn release_lease(&self, lease: &Lease) -> soiree::Result<bool> {
        check_lease_args(&lease.name, &lease.holder, Duration::from_millis(1))?;
        Ok(self
            .backend
            .release_lease(&lease.name, &lease.holder, token_of(lease)?)
            .await?)
    }
}
