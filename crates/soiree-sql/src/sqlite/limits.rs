//! SQLite's statements of shared listener limits (see [`crate::limits`]):
//! a slot is counted and taken under the one writer's `BEGIN IMMEDIATE`,
//! so no two processes take the last slot of a key.

use async_trait::async_trait;
use soiree::SlotHold;

use super::backend::SqliteBackend;
use crate::Result;
use crate::limits::LimitStatements;

#[async_trait]
impl LimitStatements for SqliteBackend {
    async fn acquire_slot(
        &self,
        key: &str,
        limit: i64,
        holder: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM soiree_limit_slots WHERE key = ?1 AND expires_ms <= ?2")
            .bind(key)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        let taken = sqlx::query(
            "INSERT INTO soiree_limit_slots (key, holder, expires_ms) SELECT ?1, ?2, ?3 \
             WHERE (SELECT count(*) FROM soiree_limit_slots WHERE key = ?1) < ?4",
        )
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        for hold in held {
            sqlx::query(
                "UPDATE soiree_limit_slots SET expires_ms = ?3 \
                 WHERE key = ?1 AND holder = ?2 AND expires_ms > ?4",
            )
            .bind(&hold.key)
            .bind(&hold.holder)
            .bind(expires_ms)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn take_rate(&self, key: &str, now_ms: i64, interval_ms: i64) -> Result<Option<i64>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let admitted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO soiree_limit_rates (key, next_ms) VALUES (?1, ?2 + ?3) \
             ON CONFLICT (key) DO UPDATE SET next_ms = excluded.next_ms \
             WHERE soiree_limit_rates.next_ms <= ?2 \
             RETURNING next_ms",
        )
        .bind(key)
        .bind(now_ms)
        .bind(interval_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let next = match admitted {
            Some(_) => None,
            None => Some(
                sqlx::query_scalar("SELECT next_ms FROM soiree_limit_rates WHERE key = ?1")
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
        let slots = sqlx::query(
            "DELETE FROM soiree_limit_slots WHERE rowid IN (SELECT rowid FROM soiree_limit_slots \
             WHERE expires_ms <= ?1 LIMIT ?2)",
        )
        .bind(now_ms)
        .bind(max)
        .execute(&self.writer)
        .await?;
        let rates = sqlx::query(
            "DELETE FROM soiree_limit_rates WHERE key IN (SELECT key FROM soiree_limit_rates \
             WHERE next_ms <= ?1 LIMIT ?2)",
        )
        .bind(now_ms)
        .bind(max)
        .execute(&self.writer)
        .await?;
        Ok(slots.rows_affected() + rates.rows_affected())
    }
}
