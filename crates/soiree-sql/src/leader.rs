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

use soiree::Lease;
use soiree::kit::{check_lease_args, ttl_ms};

use crate::backend::{Backend, Param};
use crate::core::Core;
use crate::rows::Listed;
use crate::scheduled::{now_ms, system_time};
use crate::{Error, Result};

/// Whose clock measures a lease's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseClock {
    /// The database server's, read in the statements: `UNTIL` parameters
    /// are a time to live, and no `NOW` parameter is bound.
    Server,
    /// The calling process's: `UNTIL` parameters are an expiry in Unix ms,
    /// and `NOW` (Unix ms) is bound last.
    Process,
}

/// The statements of leader leases, per database: only their SQL (and
/// whose clock they read); the binding and the rows are shared below.
pub trait Leases {
    /// Whose clock the statements read.
    const LEASE_CLOCK: LeaseClock;
    /// Grants the lease when free, expired or held by the holder; returns
    /// `token, progress`. Parameters: name, holder, UNTIL, NOW.
    const ACQUIRE_LEASE: &'static str;
    /// Extends a grant while unexpired, recording the progress when not
    /// NULL. Parameters: UNTIL, progress, name, holder, token, NOW.
    const RENEW_LEASE: &'static str;
    /// Expires a grant now, while unexpired. Parameters: name, holder,
    /// token, NOW.
    const RELEASE_LEASE: &'static str;
    /// Now in Unix ms on the server, as an SQL expression, for a
    /// [`LeaseClock::Server`] (the listing compares expiries with it).
    const SERVER_NOW_MS: &'static str = "NULL";
}

/// `params` with the clock's: UNTIL (`ttl_ms` from now) put at `until`
/// (when given), NOW pushed last on the process's clock.
fn clocked<B: Backend>(mut params: Vec<Param>, until: Option<(usize, i64)>) -> Vec<Param> {
    let now = now_ms();
    if let Some((at, ttl_ms)) = until {
        let until = match B::LEASE_CLOCK {
            LeaseClock::Server => ttl_ms,
            LeaseClock::Process => now.saturating_add(ttl_ms),
        };
        params.insert(at, Param::Int(until));
    }
    if B::LEASE_CLOCK == LeaseClock::Process {
        params.push(Param::Int(now));
    }
    params
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
        let params = clocked::<B>(
            vec![Param::Text(name.to_owned()), Param::Text(holder.to_owned())],
            Some((2, ttl_ms(ttl))),
        );
        let rows = self
            .backend
            .fetch_written(B::ACQUIRE_LEASE.to_owned(), params)
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let token = row.int(0)?;
        Ok(Some(Lease::new(
            name,
            holder,
            u64::try_from(token).unwrap_or(0),
            row.maybe_int(1)?,
        )))
    }

    pub(crate) async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        progress: Option<i64>,
    ) -> soiree::Result<bool> {
        check_lease_args(&lease.name, &lease.holder, ttl)?;
        let params = clocked::<B>(
            vec![
                Param::MaybeInt(progress),
                Param::Text(lease.name.clone()),
                Param::Text(lease.holder.clone()),
                Param::Int(token_of(lease)?),
            ],
            Some((0, ttl_ms(ttl))),
        );
        let done = self
            .backend
            .execute(B::RENEW_LEASE.to_owned(), params)
            .await?;
        Ok(done > 0)
    }

    pub(crate) async fn release_lease(&self, lease: &Lease) -> soiree::Result<bool> {
        check_lease_args(&lease.name, &lease.holder, Duration::from_millis(1))?;
        let params = clocked::<B>(
            vec![
                Param::Text(lease.name.clone()),
                Param::Text(lease.holder.clone()),
                Param::Int(token_of(lease)?),
            ],
            None,
        );
        let done = self
            .backend
            .execute(B::RELEASE_LEASE.to_owned(), params)
            .await?;
        Ok(done > 0)
    }
}

impl<B: Backend> Core<B> {
    /// The leases by name, at most `limit`, and whether each is unexpired
    /// on the clock that measures it; one `SELECT` (a read-only role may
    /// run it).
    pub(crate) async fn lease_infos(&self, limit: usize) -> Result<Vec<soiree::LeaseInfo>> {
        let p = B::placeholder;
        let now = match B::LEASE_CLOCK {
            LeaseClock::Server => B::SERVER_NOW_MS.to_owned(),
            LeaseClock::Process => p(2),
        };
        let sql = format!(
            "SELECT name, holder, token, expires_ms, progress, {now} \
             FROM soiree_leader_leases ORDER BY name LIMIT {}",
            p(1)
        );
        let mut params = vec![Param::Int(i64::try_from(limit).unwrap_or(i64::MAX))];
        if B::LEASE_CLOCK == LeaseClock::Process {
            params.push(Param::Int(now_ms()));
        }
        let rows = self.backend.fetch(sql, params).await?;
        rows.iter()
            .map(|row| {
                let expires_ms = row.int(3)?;
                Ok(soiree::LeaseInfo::new(
                    row.text_lossy(0)?,
                    row.text_lossy(1)?,
                    u64::try_from(row.int(2)?).unwrap_or(0),
                    system_time(expires_ms),
                    expires_ms > row.int(5)?,
                    row.maybe_int(4)?,
                ))
            })
            .collect()
    }
}
