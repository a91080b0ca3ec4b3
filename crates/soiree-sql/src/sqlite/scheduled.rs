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
use crate::backend::{NewEvent, Pos};
use crate::rows::ListingRow;
use crate::scheduled::{Schedule, ScheduledRow};

const SCHEDULE: &str = "INSERT INTO soiree_scheduled (topic, event_id, payload, properties, key, due_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

async fn insert_scheduled(
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

    async fn cancel_scheduled(&self, event_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM soiree_scheduled WHERE event_id = ?1")
            .bind(event_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn scheduled_rows(
        &self,
        after: Option<(i64, i64)>,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<ScheduledRow>> {
        let (cmp, order) = if newest_first {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let sql = format!(
            "SELECT id, due_ms, topic, payload, properties FROM soiree_scheduled WHERE (due_ms, id) {cmp} (?1, ?2) \
             ORDER BY due_ms {order}, id {order} LIMIT ?3"
        );
        // Past every row when there is no cursor.
        let edge = if newest_first { i64::MAX } else { i64::MIN };
        let (due, id) = after.unwrap_or((edge, edge));
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(due)
            .bind(id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.readers)
            .await?;
        rows.iter()
            .map(|row| {
                let id: i64 = sqlx::Row::try_get(row, 0)?;
                Ok(ScheduledRow {
                    id,
                    due_ms: sqlx::Row::try_get(row, 1)?,
                    event: row.raw_event_at(2, Pos { tx: 0, id }, false)?,
                })
            })
            .collect()
    }

    async fn scheduled_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM soiree_scheduled")
            .fetch_one(&self.readers)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
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
