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

/// The statement of shared limits whose logic differs per database; the
/// others are written once below, on each database's
/// [`CommonSql`](crate::backend::CommonSql).
#[async_trait]
pub trait LimitStatements {
    /// Moves the unexpired slots `held` to `expires_ms`.
    async fn renew_slots(&self, held: &[SlotHold], now_ms: i64, expires_ms: i64) -> Result<()>;
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
        let max = i64::try_from(PRUNE_BATCH).unwrap_or(i64::MAX);
        let params = vec![Param::Int(now_ms()), Param::Int(max)];
        let sql = &B::COMMON;
        let slots = self
            .backend
            .execute(sql.prune_slots.to_owned(), params.clone())
            .await?;
        let rates = self
            .backend
            .execute(sql.prune_rates.to_owned(), params)
            .await?;
        Ok(slots + rates)
    }
}

/// Frees `key`'s slots expired at `now_ms`, then takes one for `holder`
/// until `expires_ms` if fewer than `limit` remain, in one transaction
/// (serialized per key: see [`CommonSql::lock_limit_key`](crate::backend::CommonSql));
/// whether it did.
async fn acquire_slot<DB: Driver>(
    backend: &DB::Backend,
    key: &str,
    limit: i64,
    holder: &str,
    now_ms: i64,
    expires_ms: i64,
) -> Result<bool> {
    let sql = &<DB::Backend as Backend>::COMMON;
    let key = || Param::Text(key.to_owned());
    let mut tx = DB::begin(backend).await?;
    if let Some(lock) = sql.lock_limit_key {
        let scope = Param::Text(backend.lock_scope().to_owned());
        DB::execute_in(backend, &mut tx, lock, vec![scope, key()]).await?;
    }
    DB::execute_in(
        backend,
        &mut tx,
        sql.free_slots,
        vec![key(), Param::Int(now_ms)],
    )
    .await?;
    let take = vec![
        key(),
        Param::Text(holder.to_owned()),
        Param::Int(expires_ms),
        Param::Int(limit),
    ];
    let taken = DB::execute_in(backend, &mut tx, sql.take_slot, take).await? == 1;
    tx.commit().await?;
    Ok(taken)
}

/// Admits a run of `key` if its next start is not after `now_ms` (then the
/// next start becomes `now_ms + interval_ms`); else returns the next start.
async fn take_rate<DB: Driver>(
    backend: &DB::Backend,
    key: &str,
    now_ms: i64,
    interval_ms: i64,
) -> Result<Option<i64>> {
    let sql = &<DB::Backend as Backend>::COMMON;
    let mut tx = DB::begin(backend).await?;
    let take = vec![
        Param::Text(key.to_owned()),
        Param::Int(now_ms),
        Param::Int(interval_ms),
    ];
    let admitted = DB::fetch_in(backend, &mut tx, sql.take_rate, take).await?;
    let next = if admitted.is_empty() {
        let rows = DB::fetch_in(
            backend,
            &mut tx,
            sql.rate_next,
            vec![Param::Text(key.to_owned())],
        )
        .await?;
        match rows.first() {
            Some(row) => Some(row.int(0)?),
            None => return Err(sqlx::Error::RowNotFound.into()),
        }
    } else {
        None
    };
    tx.commit().await?;
    Ok(next)
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
        Ok(acquire_slot::<DB>(
            &self.core.backend,
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
        let next = take_rate::<DB>(&self.core.backend, checked(key)?, now, interval).await?;
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
