//! PostgreSQL's statements of shared listener limits (see
//! [`crate::limits`]): a slot is counted and taken in a transaction that
//! holds the key's advisory lock, so no two processes take the last slot
//! of a key; a rate's `INSERT … ON CONFLICT` locks the key's row. Only the
//! renewal is PostgreSQL's own; the other statements are in `common.rs`.

use async_trait::async_trait;
use soiree::SlotHold;

use super::backend::PgBackend;
use crate::Result;
use crate::limits::LimitStatements;

#[async_trait]
impl LimitStatements for PgBackend {
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
}
