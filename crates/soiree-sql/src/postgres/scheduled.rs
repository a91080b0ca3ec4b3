//! PostgreSQL's statements of delayed events and unique keys (see
//! [`crate::scheduled`] and [`crate::unique`]): due rows are moved into the
//! log with `FOR UPDATE SKIP LOCKED`, so consumers of every process share
//! the work; a unique key is claimed by `INSERT … ON CONFLICT` in the
//! transaction that appends the event (a concurrent claim of the key waits
//! for it, then sees the key taken).

use async_trait::async_trait;
use sqlx::PgConnection;

use super::backend::{APPEND, PgBackend, bind_events, qualify};
use crate::Result;
use crate::backend::NewEvent;
use crate::scheduled::Schedule;

const SCHEDULE: &str = "INSERT INTO soiree_scheduled (topic, event_id, payload, properties, key, due_ms) \
     VALUES ($1, $2, $3, $4, $5, $6)";

impl PgBackend {
    pub(super) fn q(&self, sql: &str) -> sqlx::SqlStr {
        qualify(self.sql.schema(), sql)
    }

    pub(crate) async fn insert_scheduled(
        &self,
        conn: &mut PgConnection,
        event: &NewEvent,
        due_ms: i64,
    ) -> Result<()> {
        sqlx::query(self.q(SCHEDULE))
            .bind(&event.topic)
            .bind(&event.event_id)
            .bind(&event.payload)
            .bind(&event.properties)
            .bind(&event.key)
            .bind(due_ms)
            .execute(conn)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Schedule for PgBackend {
    async fn schedule(&self, event: &NewEvent, due_ms: i64) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        self.insert_scheduled(&mut conn, event, due_ms).await
    }

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

    async fn prune_unique(&self, now_ms: i64, max: usize) -> Result<u64> {
        let done = sqlx::query(self.q(
            "DELETE FROM soiree_unique_keys WHERE key IN (SELECT key FROM soiree_unique_keys \
             WHERE expires_ms <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        ))
        .bind(now_ms)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn append_unique(
        &self,
        event: &NewEvent,
        due_ms: Option<i64>,
        key: &str,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        let claimed: Option<String> = sqlx::query_scalar(self.q(
            "INSERT INTO soiree_unique_keys AS u (key, event_id, expires_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id, \
               expires_ms = excluded.expires_ms \
             WHERE u.expires_ms <= $4 \
             RETURNING event_id",
        ))
        .bind(key)
        .bind(&event.event_id)
        .bind(now_ms.saturating_add(window_ms))
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_none() {
            let holder: String = sqlx::query_scalar(
                self.q("SELECT event_id FROM soiree_unique_keys WHERE key = $1"),
            )
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
            tx.rollback().await?;
            return Ok(Some(holder));
        }
        match due_ms {
            Some(due) => self.insert_scheduled(&mut tx, event, due).await?,
            None => {
                bind_events(&self.q(APPEND), std::slice::from_ref(event))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(None)
    }
}
