//! SQLite's statements of delayed events and unique keys (see
//! [`crate::scheduled`] and [`crate::unique`]): every write under the one
//! writer's `BEGIN IMMEDIATE`, so a unique key's check and the event's
//! insert are atomic across processes.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{Sqlite, SqliteConnection};

use super::backend::{SqliteBackend, append_param};
use super::statements::SQL;
use crate::Result;
use crate::backend::NewEvent;
use crate::scheduled::Schedule;

const SCHEDULE: &str = "INSERT INTO soiree_scheduled (topic, event_id, payload, properties, key, due_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

pub(super) async fn insert_scheduled(
    conn: &mut SqliteConnection,
    event: &NewEvent,
    due_ms: i64,
) -> Result<()> {
    sqlx::query(SCHEDULE)
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

impl SqliteBackend {
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

#[async_trait]
impl Schedule for SqliteBackend {
    async fn schedule(&self, event: &NewEvent, due_ms: i64) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        insert_scheduled(&mut conn, event, due_ms).await
    }

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
        let mut tx = self.begin_write().await?;
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

    async fn prune_unique(&self, now_ms: i64, max: usize) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM soiree_unique_keys WHERE key IN (SELECT key FROM soiree_unique_keys \
             WHERE expires_ms <= ?1 LIMIT ?2)",
        )
        .bind(now_ms)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .execute(&self.writer)
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
        let mut tx = self.begin_write().await?;
        let claimed: Option<String> = sqlx::query_scalar(
            "INSERT INTO soiree_unique_keys (key, event_id, expires_ms) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id, \
               expires_ms = excluded.expires_ms \
             WHERE soiree_unique_keys.expires_ms <= ?4 \
             RETURNING event_id",
        )
        .bind(key)
        .bind(&event.event_id)
        .bind(now_ms.saturating_add(window_ms))
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_none() {
            let holder: String =
                sqlx::query_scalar("SELECT event_id FROM soiree_unique_keys WHERE key = ?1")
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?;
            tx.rollback().await?;
            return Ok(Some(holder));
        }
        match due_ms {
            Some(due) => insert_scheduled(&mut tx, event, due).await?,
            None => {
                sqlx::query(SQL.append)
                    .bind(append_param(std::slice::from_ref(event)))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(None)
    }
}
