//! PostgreSQL's statements of delayed events and unique keys (see
//! [`crate::scheduled`] and [`crate::unique`]): due rows are moved into the
//! log with `FOR UPDATE SKIP LOCKED`, so consumers of every process share
//! the work; a unique key is claimed by `INSERT … ON CONFLICT` in the
//! transaction that appends the event (a concurrent claim of the key waits
//! for it, then sees the key taken). Only the move of due rows is
//! PostgreSQL's own; the other statements are in `common.rs`.

use async_trait::async_trait;

use super::backend::{PgBackend, qualify};
use crate::Result;
use crate::scheduled::Schedule;

impl PgBackend {
    pub(super) fn q(&self, sql: &str) -> sqlx::SqlStr {
        qualify(self.sql.schema(), sql)
    }
}

#[async_trait]
impl Schedule for PgBackend {
    async fn move_due(&self, now_ms: i64, max: usize) -> Result<u64> {
        let moved = sqlx::query(
            self.q("WITH due AS (DELETE FROM soiree_scheduled WHERE id IN ( \
               SELECT id FROM soiree_scheduled WHERE due_ms <= $1 \
               ORDER BY due_ms, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING id, due_ms, topic, event_id, payload, properties, key) \
             INSERT INTO soiree_events (topic, event_id, payload, properties, key) \
             SELECT topic, event_id, payload::json, properties::json, key FROM due \
             ORDER BY due_ms, id"),
        )
        .bind(now_ms)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(moved.rows_affected())
    }
}
