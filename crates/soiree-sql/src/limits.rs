//! Listener limits shared by every process of the store
//! ([`soiree::SharedLimits`]): `soiree_limit_slots` holds each concurrency
//! slot with its holder and expiry, `soiree_limit_rates` each rate's
//! earliest next start. Taking a slot counts the key's unexpired slots and
//! inserts one in one serialized step (SQLite's one writer; a transaction
//! advisory lock of the key on PostgreSQL), so concurrent takers in any
//! number of processes never exceed the limit; a rate is one
//! `INSERT … ON CONFLICT … WHERE` (the row lock serializes takers).

use std::time::Duration;

use async_trait::async_trait;
use soiree::SlotHold;

use crate::backend::{Backend, Param};
use crate::core::Core;
use crate::rows::Listed;
use crate::scheduled::{now_ms, system_time};
use crate::{Driver, Result, SqlStore};

/// Expired slots and past rates deleted per retention run at most.
const PRUNE_BATCH: usize = 10_000;

/// The statements of shared limits that differ per database (locking,
/// transactions); those that differ only by their placeholders are written
/// once below, run through [`Backend::execute`].
#[async_trait]
pub trait LimitStatements {
    /// Frees `key`'s slots expired at `now_ms`, then takes one for `holder`
    /// until `expires_ms` if fewer than `limit` remain; whether it did.
    async fn acquire_slot(
        &self,
        key: &str,
        limit: i64,
        holder: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<bool>;
    /// Moves the unexpired slots `held` to `expires_ms`.
    async fn renew_slots(&self, held: &[SlotHold], now_ms: i64, expires_ms: i64) -> Result<()>;
    /// Admits a run of `key` if its next start is not after `now_ms`
    /// (then the next start becomes `now_ms + interval_ms`); else returns
    /// the next start.
    async fn take_rate(&self, key: &str, now_ms: i64, interval_ms: i64) -> Result<Option<i64>>;
    /// Deletes at most `max` expired slots and past rates; returns how many.
    async fn prune_limits(&self, now_ms: i64, max: usize) -> Result<u64>;
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A slot key, or a rate key, as the store keeps it: NUL is refused by
/// PostgreSQL text (the bus escapes it already; this is for other callers).
fn checked(key: &str) -> soiree::Result<&str> {
    crate::topic::no_nul("the limit key", key).map_err(soiree::Error::from)?;
    Ok(key)
}

impl<B: Backend> crate::core::Core<B> {
    /// Deletes expired limit slots and past rates (a bounded batch).
    pub(crate) async fn prune_limits(&self) -> Result<u64> {
        self.backend.prune_limits(now_ms(), PRUNE_BATCH).await
    }
}

/// Shared across every process of the store; times on the calling
/// process's clock (see [`soiree::SharedLimits`]).
#[soiree::async_trait]
impl<DB: Driver> soiree::SharedLimits for SqlStore<DB> {
    async fn acquire_slot(
        &self,
        key: &str,
        limit: u32,
        holder: &str,
        ttl: Duration,
    ) -> soiree::Result<bool> {
        let now = now_ms();
        Ok(self
            .core
            .backend
            .acquire_slot(
                checked(key)?,
                i64::from(limit),
                checked(holder)?,
                now,
                now.saturating_add(ms(ttl)),
            )
            .await?)
    }

    async fn renew_slots(&self, held: &[SlotHold], ttl: Duration) -> soiree::Result<()> {
        if held.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        Ok(self
            .core
            .backend
            .renew_slots(held, now, now.saturating_add(ms(ttl)))
            .await?)
    }

    async fn release_slot(&self, held: &SlotHold) -> soiree::Result<()> {
        let p = DB::Backend::placeholder;
        let sql = format!(
            "DELETE FROM soiree_limit_slots WHERE key = {} AND holder = {}",
            p(1),
            p(2)
        );
        let params = vec![
            Param::Text(held.key.clone()),
            Param::Text(held.holder.clone()),
        ];
        self.core.backend.execute(sql, params).await?;
        Ok(())
    }

    async fn take_rate(
        &self,
        key: &str,
        count: u32,
        period: Duration,
    ) -> soiree::Result<Option<Duration>> {
        let now = now_ms();
        let interval = soiree::kit::gcra_interval(count, period);
        let next = self
            .core
            .backend
            .take_rate(checked(key)?, now, interval)
            .await?;
        Ok(next.map(|next| {
            Duration::from_millis(u64::try_from(next.saturating_sub(now)).unwrap_or(0).max(1))
        }))
    }
}

impl<B: Backend> Core<B> {
    /// The unexpired slots by key then holder, at most `limit` (expiry on
    /// this process's clock, as the limits measure it); one `SELECT`.
    pub(crate) async fn slot_infos(&self, limit: usize) -> Result<Vec<soiree::LimitSlot>> {
        let p = B::placeholder;
        let sql = format!(
            "SELECT key, holder, expires_ms FROM soiree_limit_slots \
             WHERE expires_ms > {} ORDER BY key, holder LIMIT {}",
            p(1),
            p(2)
        );
        let params = vec![
            Param::Int(now_ms()),
            Param::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
        ];
        let rows = self.backend.fetch(sql, params).await?;
        rows.iter()
            .map(|row| {
                Ok(soiree::LimitSlot::new(
                    row.text_lossy(0)?,
                    row.text_lossy(1)?,
                    system_time(row.int(2)?),
                ))
            })
            .collect()
    }
}
