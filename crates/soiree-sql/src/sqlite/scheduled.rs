//! SQLite's statements of delayed events and unique keys (see
//! [`crate::scheduled`] and [`crate::unique`]): every write under the one
//! writer's `BEGIN IMMEDIATE`, so a unique key's check and the event's
//! insert are atomic across processes. Only the move of due rows is
//! SQLite's own; the other statements are in `common.rs`.

use async_trait::async_trait;
use serde_json::Value;

use super::backend::SqliteBackend;
use crate::Result;
use crate::scheduled::Schedule;

#[async_trait]
impl Schedule for SqliteBackend {
    async fn move_due(&self, now_ms: i64, max: usize) -> Result<u64> {
        // A cheap read first: most fills find nothing due.
        let any: Option<i64> =
            sqlx::query_scalar("SELECT id FROM soiree_scheduled WHERE due_ms <= ?1 LIMIT 1")
                .bind(now_ms)
                .fetch_optional(&self.readers)
                .await?;
        if any.is_none() {
            return Ok(0);
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM soiree_scheduled WHERE due_ms <= ?1 ORDER BY due_ms, id LIMIT ?2",
        )
        .bind(now_ms)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let param = Value::from(ids.clone()).to_string();
        sqlx::query(
            "INSERT INTO soiree_events (topic, event_id, payload, properties, key) \
             SELECT topic, event_id, payload, properties, key FROM soiree_scheduled \
             WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY due_ms, id",
        )
        .bind(&param)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM soiree_scheduled WHERE id IN (SELECT value FROM json_each(?1))")
            .bind(&param)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}
