//! SQLite's statements of shared listener limits (see [`crate::limits`]):
//! a slot is counted and taken under the one writer's `BEGIN IMMEDIATE`,
//! so no two processes take the last slot of a key. Only the renewal is
//! SQLite's own; the other statements are in `common.rs`.

use async_trait::async_trait;
use soiree::SlotHold;

use super::backend::SqliteBackend;
use crate::Result;
use crate::limits::LimitStatements;

#[async_trait]
impl LimitStatements for SqliteBackend {
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
}
