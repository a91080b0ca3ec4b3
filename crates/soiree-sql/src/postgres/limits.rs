//! PostgreSQL's statements of shared listener limits (see
//! [`crate::limits`]): a slot is counted and taken in a transaction that
//! holds the key's advisory lock, so no two processes take the last slot
//! of a key; a rate's `INSERT … ON CONFLICT` locks the key's row.

use async_trait::async_trait;
use soiree::SlotHold;

use super::backend::PgBackend;
use crate::Result;
use crate::limits::LimitStatements;

#[async_trait]
impl LimitStatements for PgBackend {
    async fn acquire_slot(
        &self,
        key: &str,
        limit: i64,
        holder: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // The schema is in the lock's key: stores in two schemas of one
        // database do not wait for each other.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '.' || $2, 0))")
            .bind(self.sql.schema())
            .bind(key)
            .execute(&mut *tx)
            .await?;
        sqlx::query(self.q("DELETE FROM soiree_limit_slots WHERE key = $1 AND expires_ms <= $2"))
            .bind(key)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        let taken = sqlx::query(self.q(
            "INSERT INTO soiree_limit_slots (key, holder, expires_ms) SELECT $1, $2, $3 \
             WHERE (SELECT count(*) FROM soiree_limit_slots WHERE key = $1) < $4",
        ))
        .bind(key)
        .bind(holder)
        .bind(expires_ms)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(taken)
    }

    async fn renew_slots(&self, held: &[SlotHold], now_ms: i64, expires_ms: i64) -> Result<()> {
        let keys: Vec<&str> = held.iter().map(|hold| hold.key.as_str()).collect();
        let holders: Vec<&str> = held.iter().map(|hold| hold.holder.as_str()).collect();
        sqlx::query(self.q("UPDATE soiree_limit_slots AS s SET expires_ms = $3 \
             FROM unnest($1::text[], $2::text[]) AS h(key, holder) \
             WHERE s.key = h.key AND s.holder = h.holder AND s.expires_ms > $4"))
        .bind(&keys)
        .bind(&holders)
        .bind(expires_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_rate(&self, key: &str, now_ms: i64, interval_ms: i64) -> Result<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let admitted: Option<i64> = sqlx::query_scalar(self.q(
            "INSERT INTO soiree_limit_rates AS r (key, next_ms) VALUES ($1, $2 + $3) \
             ON CONFLICT (key) DO UPDATE SET next_ms = excluded.next_ms \
             WHERE r.next_ms <= $2 \
             RETURNING next_ms",
        ))
        .bind(key)
        .bind(now_ms)
        .bind(interval_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let next = match admitted {
            Some(_) => None,
            None => Some(
                sqlx::query_scalar(self.q("SELECT next_ms FROM soiree_limit_rates WHERE key = $1"))
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?,
            ),
        };
        tx.commit().await?;
        Ok(next)
    }

    async fn prune_limits(&self, now_ms: i64, max: usize) -> Result<u64> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let slots = sqlx::query(self.q(
            "DELETE FROM soiree_limit_slots WHERE (key, holder) IN (SELECT key, holder \
             FROM soiree_limit_slots WHERE expires_ms <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        ))
        .bind(now_ms)
        .bind(max)
        .execute(&self.pool)
        .await?;
        let rates = sqlx::query(self.q(
            "DELETE FROM soiree_limit_rates WHERE key IN (SELECT key FROM soiree_limit_rates \
             WHERE next_ms <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        ))
        .bind(now_ms)
        .bind(max)
        .execute(&self.pool)
        .await?;
        Ok(slots.rows_affected() + rates.rows_affected())
    }
}
