//! The SQLite SQL of the store: one writer connection (`BEGIN IMMEDIATE`
//! for every multi-statement write) and a pool of readers.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{Value, json};
use soiree::StoredResult;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};

use crate::Result;
use crate::backend::{
    Backend, ConsumerRow, Counts, DeadRow, FailedRetry, FailedRow, LeaseRow, Listing, NewEvent,
    Param, PendingRow, Pos, RawEvent, RetryRow, Row as ListedRow, Run, Scan,
};
use crate::rows::{self, ListingRow};
use crate::{SqlDeadLetter, SqlDeadLetterFilter};

/// Appends a JSON array of `[topic, event_id, payload, properties, key]`
/// rows, in order.
/// The ordering key (`soiree.key`) of a dead letter's properties text, or
/// NULL: dead letters keep no key column of their own.
macro_rules! key_from_properties {
    () => {
        "CASE WHEN json_valid(properties) AND json_type(properties) = 'object' \
           AND json_type(properties, '$.\"soiree.key\"') = 'text' \
         THEN json_extract(properties, '$.\"soiree.key\"') END"
    };
}

/// The event `INSERT`, the only one: the store's appends, `emit_in` and
/// the outbox statement of [`outbox`](crate::outbox) run it. One JSON
/// array of `[topic, event id, payload, properties, key]` rows
/// ([`append_param`]).
pub(crate) const APPEND: &str = "INSERT INTO soiree_events (topic, event_id, payload, properties, key) \
     SELECT value->>0, value->>1, value->>2, value->>3, value->>4 \
     FROM json_each(?1) ORDER BY key";

/// Events not yet acknowledged by group `?1`: unclaimed, leased, or in the
/// retry table.
const BACKLOG: &str = "SELECT (SELECT count(*) FROM soiree_events WHERE id > \
       (SELECT claimed_id FROM soiree_cursors WHERE group_name = ?1)) \
     + (SELECT coalesce(sum(events), 0) FROM soiree_leases WHERE group_name = ?1) \
     + (SELECT count(*) FROM soiree_retries WHERE group_name = ?1)";

/// The age in milliseconds (a float) of the oldest event group `?1` has not
/// acknowledged.
const OLDEST: &str = "SELECT (julianday('now') - julianday(min(created_at))) * 86400000.0 FROM ( \
       SELECT * FROM (SELECT created_at FROM soiree_events WHERE id > \
         (SELECT claimed_id FROM soiree_cursors WHERE group_name = ?1) \
         ORDER BY id LIMIT 1) \
       UNION ALL \
       SELECT e.created_at FROM soiree_leases l JOIN soiree_events e ON e.id = l.lo_id \
       WHERE l.group_name = ?1 \
       UNION ALL \
       SELECT created_at FROM soiree_retries WHERE group_name = ?1)";

/// A row's time (stored to the millisecond) in microseconds since the epoch.
const AT_US: &str =
    "(CAST(round((julianday(created_at) - 2440587.5) * 86400000.0) AS INTEGER) * 1000)";

const EVENTS: Listing = Listing {
    columns: "id, AT_US, topic, payload, properties",
    table: "soiree_events",
    at_us: AT_US,
    grouped: false,
    event_id_nullable: true,
};

const RESULTS: Listing = rows::results(AT_US);
const DEAD_LETTERS: Listing = rows::dead_letters(AT_US);

/// The deliveries group `?1` holds at `?2` (Unix ms): its live leases (kind
/// 0) and its claimed retry rows (kind 1), idle since taken or extended
/// (`?3`: the lease timeout in milliseconds, by which an extension pushes
/// the expiry).
/// Then the lease's range (NULL for retry rows), the milliseconds left
/// before it expires, and a retry row's event id.
const PENDING: &str = "SELECT 0 AS kind, id, consumer, max(0, ?2 - expires_at + ?3) AS idle_ms, \
       deliveries, events, NULL AS topic, NULL AS payload, NULL AS properties, \
       0 AS lo_tx, lo_id, 0 AS hi_tx, hi_id, expires_at - ?2 AS expires_ms, NULL AS event_id \
     FROM soiree_leases WHERE group_name = ?1 AND expires_at > ?2 \
     UNION ALL \
     SELECT 1, id, consumer, max(0, ?2 - run_at + ?3), deliveries, 1, topic, payload, properties, \
       NULL, NULL, NULL, NULL, run_at - ?2, event_id \
     FROM soiree_retries WHERE group_name = ?1 AND consumer IS NOT NULL AND run_at > ?2";

/// A page `q` of [`PENDING`] with the ids of the events each delivery
/// covers, as a JSON array (at most 100 per lease), computed for the page
/// only.
const PENDING_IDS: &str = "CASE WHEN q.kind = 0 THEN \
       (SELECT json_group_array(event_id) FROM ( \
          SELECT event_id FROM soiree_events \
          WHERE id BETWEEN q.lo_id AND q.hi_id ORDER BY id LIMIT 100)) \
     ELSE json_array(q.event_id) END";

/// The consumers of group `?1` at `?2`: those holding deliveries, and
/// those whose heartbeat is live.
const CONSUMERS: &str = "SELECT consumer, events, idle_ms FROM (PENDING) \
     UNION ALL \
     SELECT consumer, 0, max(0, ?2 - last_seen) \
     FROM soiree_consumers WHERE group_name = ?1 AND expires_at > ?2";

/// `?n` in SQLite.
fn placeholder(n: usize) -> String {
    format!("?{n}")
}

/// The SQLite side of a store.
#[derive(Debug)]
pub struct SqliteBackend {
    pub(crate) writer: SqlitePool,
    pub(crate) readers: SqlitePool,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) lease_ms: i64,
}

/// The JSON parameter of [`APPEND`].
pub(crate) fn append_param(events: &[NewEvent]) -> String {
    let rows: Vec<Value> = events
        .iter()
        .map(|e| json!([e.topic, e.event_id, e.payload, e.properties, e.key]))
        .collect();
    Value::Array(rows).to_string()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn pairs_json(leases: &[(i64, i64)]) -> String {
    Value::Array(
        leases
            .iter()
            .map(|(id, token)| json!([id, token]))
            .collect(),
    )
    .to_string()
}

async fn next_token(conn: &mut SqliteConnection) -> Result<i64> {
    Ok(
        sqlx::query_scalar("UPDATE soiree_tokens SET next = next + 1 WHERE id = 1 RETURNING next")
            .fetch_one(conn)
            .await?,
    )
}

impl SqliteBackend {
    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn insert_lease(
        &self,
        conn: &mut SqliteConnection,
        lo: i64,
        hi: i64,
        events: i64,
        deliveries: i32,
    ) -> Result<LeaseRow> {
        let token = next_token(&mut *conn).await?;
        let row = sqlx::query(
            "INSERT INTO soiree_leases (group_name, token, consumer, lo_id, hi_id, events, \
             deliveries, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             RETURNING id, token, lo_id, hi_id, events, deliveries",
        )
        .bind(&self.group)
        .bind(token)
        .bind(&self.consumer)
        .bind(lo)
        .bind(hi)
        .bind(events)
        .bind(deliveries)
        .bind(now_ms() + self.lease_ms)
        .fetch_one(conn)
        .await?;
        row.lease()
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn append(&self, events: &[NewEvent]) -> Result<()> {
        sqlx::query(APPEND)
            .bind(append_param(events))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn save_results(&self, results: &[StoredResult]) -> Result<()> {
        let rows: Vec<Value> = results
            .iter()
            .map(|r| json!([r.topic, r.event_id, r.handler_id, r.error, r.attempt]))
            .collect();
        let param = Value::Array(rows).to_string();
        let mut tx = self.write_tx().await?;
        // Results and successes are the group's own (?2): another group's
        // listener of the same name has not run for this one.
        sqlx::query(
            "INSERT INTO soiree_results (topic, event_id, handler_id, error, attempt, \
               group_name) \
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, ?2 \
             FROM json_each(?1) ORDER BY key",
        )
        .bind(&param)
        .bind(&self.group)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT OR IGNORE INTO soiree_handled (event_id, group_name, handler_id) \
             SELECT value->>1, ?2, value->>2 FROM json_each(?1) \
             WHERE value->>3 IS NULL AND value->>1 <> ''",
        )
        .bind(&param)
        .bind(&self.group)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn succeeded(&self, event_ids: &[String]) -> Result<Vec<(String, String)>> {
        let param = serde_json::to_string(event_ids)?;
        let rows = sqlx::query(
            "SELECT event_id, handler_id FROM soiree_handled \
             WHERE event_id IN (SELECT value FROM json_each(?1)) AND group_name = ?2",
        )
        .bind(param)
        .bind(&self.group)
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    async fn claim(&self, max: usize) -> Result<Option<LeaseRow>> {
        // A read first: an idle poll takes no write lock.
        if !self.waiting_unclaimed(&self.readers).await? {
            return Ok(None);
        }
        let mut tx = self.write_tx().await?;
        let claimed: i64 =
            sqlx::query_scalar("SELECT claimed_id FROM soiree_cursors WHERE group_name = ?1")
                .bind(&self.group)
                .fetch_one(&mut *tx)
                .await?;
        let (lo, hi, n): (Option<i64>, Option<i64>, i64) = sqlx::query_as(
            "SELECT min(id), max(id), count(*) FROM ( \
               SELECT id FROM soiree_events WHERE id > ?1 ORDER BY id LIMIT ?2)",
        )
        .bind(claimed)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .fetch_one(&mut *tx)
        .await?;
        let (Some(lo), Some(hi)) = (lo, hi) else {
            tx.rollback().await?;
            return Ok(None);
        };
        sqlx::query(
            "UPDATE soiree_cursors SET claimed_id = ?2, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE group_name = ?1",
        )
        .bind(&self.group)
        .bind(hi)
        .execute(&mut *tx)
        .await?;
        let lease = self.insert_lease(&mut tx, lo, hi, n, 1).await?;
        tx.commit().await?;
        Ok(Some(lease))
    }

    async fn waiting(&self) -> Result<bool> {
        // Writes are serialized: whatever is committed can be claimed.
        Ok(false)
    }

    async fn reclaim(&self) -> Result<Option<LeaseRow>> {
        let now = now_ms();
        let expired: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM soiree_leases WHERE group_name = ?1 AND expires_at < ?2)",
        )
        .bind(&self.group)
        .bind(now)
        .fetch_one(&self.readers)
        .await?;
        if !expired {
            return Ok(None);
        }
        let mut tx = self.write_tx().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM soiree_leases WHERE group_name = ?1 AND expires_at < ?2 \
             ORDER BY lo_id LIMIT 1",
        )
        .bind(&self.group)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            tx.rollback().await?;
            return Ok(None);
        };
        let token = next_token(&mut tx).await?;
        let row = sqlx::query(
            "UPDATE soiree_leases SET token = ?2, consumer = ?3, deliveries = deliveries + 1, \
             expires_at = ?4 WHERE id = ?1 \
             RETURNING id, token, lo_id, hi_id, events, deliveries",
        )
        .bind(id)
        .bind(token)
        .bind(&self.consumer)
        .bind(now_ms() + self.lease_ms)
        .fetch_one(&mut *tx)
        .await?;
        let lease = row.lease()?;
        tx.commit().await?;
        Ok(Some(lease))
    }

    async fn split(&self, old: &LeaseRow) -> Result<Vec<LeaseRow>> {
        let mut tx = self.write_tx().await?;
        let deleted = sqlx::query("DELETE FROM soiree_leases WHERE id = ?1 AND token = ?2")
            .bind(old.id)
            .bind(old.token)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM soiree_events WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
        )
        .bind(old.lo.id)
        .bind(old.hi.id)
        .fetch_all(&mut *tx)
        .await?;
        let mut leases = Vec::with_capacity(ids.len());
        for id in ids {
            leases.push(
                self.insert_lease(&mut tx, id, id, 1, old.deliveries)
                    .await?,
            );
        }
        tx.commit().await?;
        Ok(leases)
    }

    async fn dead_letter_lease(&self, lease: &LeaseRow, max_deliveries: u32) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let deleted = sqlx::query("DELETE FROM soiree_leases WHERE id = ?1 AND token = ?2")
            .bind(lease.id)
            .bind(lease.token)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(0);
        }
        let moved = sqlx::query(
            "INSERT INTO soiree_dead_letters (group_name, event_row, topic, event_id, payload, \
               properties, error, deliveries) \
             SELECT ?1, e.id, e.topic, e.event_id, e.payload, e.properties, \
               'delivered ' || ?4 || ' times (max ' || ?5 || ')' || \
               coalesce('; last error: ' || ( \
                 SELECT r.error FROM soiree_results r \
                 WHERE r.event_id = e.event_id AND r.error IS NOT NULL \
                   AND (r.group_name = ?1 OR r.group_name IS NULL) \
                 ORDER BY r.id DESC LIMIT 1), ' without acknowledgement'), ?4 \
             FROM soiree_events e WHERE e.id BETWEEN ?2 AND ?3",
        )
        .bind(&self.group)
        .bind(lease.lo.id)
        .bind(lease.hi.id)
        .bind(lease.deliveries)
        .bind(i64::from(max_deliveries))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(moved.rows_affected())
    }

    async fn read(&self, lease: &LeaseRow) -> Result<Vec<RawEvent>> {
        let rows = sqlx::query(
            "SELECT id, topic, payload, properties, key FROM soiree_events \
             WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
        )
        .bind(lease.lo.id)
        .bind(lease.hi.id)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(ListingRow::raw_event).collect()
    }

    async fn dead_letter_rows(&self, rows: &[DeadRow]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for row in rows {
            sqlx::query(
                // The event id comes from the log: the row may not parse.
                "INSERT INTO soiree_dead_letters (group_name, event_row, topic, event_id, \
                 payload, properties, error, deliveries) VALUES (?1, ?2, ?3, \
                 (SELECT event_id FROM soiree_events WHERE id = ?2), ?4, ?5, ?6, ?7)",
            )
            .bind(&self.group)
            .bind(row.event.pos.id)
            .bind(&row.event.topic)
            .bind(&row.event.payload)
            .bind(&row.event.properties)
            .bind(&row.error)
            .bind(row.deliveries)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn complete(&self, leases: &[(i64, i64)]) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "DELETE FROM soiree_leases WHERE (id, token) IN \
             (SELECT value->>0, value->>1 FROM json_each(?1)) RETURNING id",
        )
        .bind(pairs_json(leases))
        .fetch_all(&self.writer)
        .await?)
    }

    async fn extend(&self, leases: &[(i64, i64)]) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "UPDATE soiree_leases SET expires_at = ?2 WHERE (id, token) IN \
             (SELECT value->>0, value->>1 FROM json_each(?1)) RETURNING id",
        )
        .bind(pairs_json(leases))
        .bind(now_ms() + self.lease_ms)
        .fetch_all(&self.writer)
        .await?)
    }

    async fn backlog(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(BACKLOG)
            .bind(&self.group)
            .fetch_one(&self.readers)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn events_page(&self, after: Option<Pos>, limit: usize) -> Result<Vec<RawEvent>> {
        let rows = sqlx::query(
            "SELECT id, topic, payload, properties, key FROM soiree_events \
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )
        .bind(after.map_or(0, |pos| pos.id))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(ListingRow::raw_event).collect()
    }

    async fn results_page(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, StoredResult)>> {
        let rows = sqlx::query(
            "SELECT id, topic, event_id, handler_id, error, attempt FROM soiree_results \
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )
        .bind(after.unwrap_or(0))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                let attempt: i64 = row.try_get(5)?;
                Ok((
                    row.try_get(0)?,
                    StoredResult {
                        topic: row.text(1)?.0.unwrap_or_default(),
                        event_id: row.text(2)?.0.unwrap_or_default(),
                        handler_id: row.text(3)?.0.unwrap_or_default(),
                        error: row.text(4)?.0,
                        attempt: u32::try_from(attempt).unwrap_or(0),
                    },
                ))
            })
            .collect()
    }

    async fn fail_leased(&self, rows: &[FailedRow], retry: bool) -> Result<u64> {
        let param = Value::Array(
            rows.iter()
                .map(|r| json!([r.lease, r.token, r.pos.id, r.error, r.delay_ms]))
                .collect(),
        )
        .to_string();
        let sql = if retry {
            "INSERT INTO soiree_retries (group_name, event_row, topic, event_id, payload, \
               properties, deliveries, error, run_at, key) \
             SELECT ?1, e.id, e.topic, e.event_id, e.payload, e.properties, l.deliveries, \
               u.value->>3, ?3 + u.value->>4, e.key \
             FROM json_each(?2) u \
             JOIN soiree_leases l ON l.id = u.value->>0 AND l.token = u.value->>1 \
             JOIN soiree_events e ON e.id = u.value->>2"
        } else {
            "INSERT INTO soiree_dead_letters (group_name, event_row, topic, event_id, payload, \
               properties, error, deliveries) \
             SELECT ?1, e.id, e.topic, e.event_id, e.payload, e.properties, u.value->>3, \
               l.deliveries + 0 * ?3 \
             FROM json_each(?2) u \
             JOIN soiree_leases l ON l.id = u.value->>0 AND l.token = u.value->>1 \
             JOIN soiree_events e ON e.id = u.value->>2"
        };
        let done = sqlx::query(sql)
            .bind(&self.group)
            .bind(param)
            .bind(now_ms())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn claim_retries(&self, max: usize) -> Result<Vec<RetryRow>> {
        let now = now_ms();
        let due: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM soiree_retries WHERE group_name = ?1 AND run_at <= ?2)",
        )
        .bind(&self.group)
        .bind(now)
        .fetch_one(&self.readers)
        .await?;
        if !due {
            return Ok(Vec::new());
        }
        let mut tx = self.write_tx().await?;
        let token = next_token(&mut tx).await?;
        let rows = sqlx::query(
            "UPDATE soiree_retries SET token = ?3, deliveries = deliveries + 1, run_at = ?5, \
               consumer = ?6 \
             WHERE id IN (SELECT id FROM soiree_retries WHERE group_name = ?1 AND run_at <= ?2 \
               ORDER BY run_at, id LIMIT ?4) \
             RETURNING id, token, deliveries, event_row, topic, payload, properties, key",
        )
        .bind(&self.group)
        .bind(now_ms())
        .bind(token)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .bind(now_ms() + self.lease_ms)
        .bind(&self.consumer)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut claimed = rows
            .iter()
            .map(ListingRow::retry_row)
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|row| row.id);
        Ok(claimed)
    }

    async fn ack_retries(&self, rows: &[(i64, i64)]) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "DELETE FROM soiree_retries WHERE (id, token) IN \
             (SELECT value->>0, value->>1 FROM json_each(?1)) RETURNING id",
        )
        .bind(pairs_json(rows))
        .fetch_all(&self.writer)
        .await?)
    }

    async fn fail_retries(&self, rows: &[FailedRetry], retry: bool) -> Result<u64> {
        let param = Value::Array(
            rows.iter()
                .map(|r| json!([r.id, r.token, r.error, r.delay_ms]))
                .collect(),
        )
        .to_string();
        if retry {
            let done = sqlx::query(
                "UPDATE soiree_retries SET consumer = NULL, \
                   error = (SELECT value->>2 FROM json_each(?1) \
                     WHERE value->>0 = soiree_retries.id), \
                   run_at = ?2 + (SELECT value->>3 FROM json_each(?1) \
                     WHERE value->>0 = soiree_retries.id) \
                 WHERE (id, token) IN (SELECT value->>0, value->>1 FROM json_each(?1))",
            )
            .bind(&param)
            .bind(now_ms())
            .execute(&self.writer)
            .await?;
            return Ok(done.rows_affected());
        }
        let mut tx = self.write_tx().await?;
        let moved = sqlx::query(
            "INSERT INTO soiree_dead_letters (group_name, event_row, topic, event_id, payload, \
               properties, error, deliveries) \
             SELECT r.group_name, r.event_row, r.topic, r.event_id, r.payload, r.properties, \
               u.value->>2, r.deliveries \
             FROM json_each(?1) u \
             JOIN soiree_retries r ON r.id = u.value->>0 AND r.token = u.value->>1",
        )
        .bind(&param)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM soiree_retries WHERE (id, token) IN \
             (SELECT value->>0, value->>1 FROM json_each(?1))",
        )
        .bind(&param)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(moved.rows_affected())
    }

    async fn extend_retries(&self, rows: &[(i64, i64)]) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "UPDATE soiree_retries SET run_at = ?2 WHERE (id, token) IN \
             (SELECT value->>0, value->>1 FROM json_each(?1)) RETURNING id",
        )
        .bind(pairs_json(rows))
        .bind(now_ms() + self.lease_ms)
        .fetch_all(&self.writer)
        .await?)
    }

    async fn release_retries(&self, rows: &[(i64, i64)]) -> Result<()> {
        sqlx::query(
            "UPDATE soiree_retries SET run_at = ?2, deliveries = max(deliveries - 1, 0), \
               consumer = NULL \
             WHERE (id, token) IN (SELECT value->>0, value->>1 FROM json_each(?1))",
        )
        .bind(pairs_json(rows))
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn hand_back(&self, lease: (i64, i64), runs: &[Run]) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let held: Option<(i32, String)> = sqlx::query_as(
            "SELECT deliveries, consumer FROM soiree_leases WHERE id = ?1 AND token = ?2",
        )
        .bind(lease.0)
        .bind(lease.1)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((deliveries, _)) = held else {
            tx.rollback().await?;
            return Ok(false);
        };
        for run in runs {
            let token = next_token(&mut tx).await?;
            sqlx::query(
                "INSERT INTO soiree_leases (group_name, token, consumer, lo_id, hi_id, events, \
                 deliveries, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(&self.group)
            .bind(token)
            .bind(&self.consumer)
            .bind(run.lo.id)
            .bind(run.hi.id)
            .bind(run.events)
            .bind((deliveries - 1).max(0))
            .bind(now_ms() - 1000)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn replay_dead(&self, filter: &SqlDeadLetterFilter) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM soiree_dead_letters WHERE group_name = ?1 \
               AND (?2 IS NULL OR topic = ?2) AND (?3 IS NULL OR event_id = ?3) \
             ORDER BY id LIMIT ?4",
        )
        .bind(&self.group)
        .bind(filter.topic.as_deref())
        .bind(filter.event_id.as_deref())
        .bind(i64::try_from(filter.limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let moved = self.move_dead(&mut tx, &ids).await?;
        tx.commit().await?;
        Ok(moved)
    }

    async fn dead_letters(&self, scan: &Scan) -> Result<Vec<SqlDeadLetter>> {
        let rows = self.listing(&DEAD_LETTERS, scan).await?;
        rows.iter().map(ListingRow::dead_letter).collect()
    }

    async fn event_rows(&self, scan: &Scan) -> Result<Vec<ListedRow<RawEvent>>> {
        let rows = self.listing(&EVENTS, scan).await?;
        rows.iter().map(ListingRow::event_row).collect()
    }

    async fn result_rows(&self, scan: &Scan) -> Result<Vec<ListedRow<StoredResult>>> {
        let rows = self.listing(&RESULTS, scan).await?;
        rows.iter().map(ListingRow::result_row).collect()
    }

    async fn counts(&self) -> Result<Counts> {
        let sql = format!(
            "WITH p AS ({PENDING}) SELECT \
               coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'soiree_events'), 0), \
               (SELECT count(*) FROM soiree_events), \
               (SELECT count(*) FROM soiree_results), \
               (SELECT count(*) FROM soiree_dead_letters WHERE group_name = ?1), \
               ({BACKLOG}), \
               CAST(round(max(0, ({OLDEST}))) AS INTEGER), \
               (SELECT coalesce(sum(events), 0) FROM p), \
               (SELECT count(DISTINCT consumer) FROM ( \
                  SELECT consumer FROM p UNION ALL \
                  SELECT consumer FROM soiree_consumers \
                  WHERE group_name = ?1 AND expires_at > ?2))"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&self.group)
            .bind(now_ms())
            .bind(self.lease_ms)
            .fetch_one(&self.readers)
            .await?;
        row.counts()
    }

    async fn pending(
        &self,
        after: Option<(i64, i64)>,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<PendingRow>> {
        let (sql, start) = if newest_first {
            (
                format!(
                    "SELECT q.*, {PENDING_IDS} FROM ( \
                       SELECT * FROM ({PENDING}) WHERE (kind, id) < (?4, ?5) \
                       ORDER BY kind DESC, id DESC LIMIT ?6) q \
                     ORDER BY kind DESC, id DESC"
                ),
                (2, 0),
            )
        } else {
            (
                format!(
                    "SELECT q.*, {PENDING_IDS} FROM ( \
                       SELECT * FROM ({PENDING}) WHERE (kind, id) > (?4, ?5) \
                       ORDER BY kind, id LIMIT ?6) q \
                     ORDER BY kind, id"
                ),
                (-1, 0),
            )
        };
        let (kind, id) = after.unwrap_or(start);
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(&self.group)
            .bind(now_ms())
            .bind(self.lease_ms)
            .bind(kind)
            .bind(id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(ListingRow::pending_row).collect()
    }

    async fn topic_counts(&self, window: usize) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT topic, count(*) FROM \
               (SELECT topic FROM soiree_events ORDER BY id DESC LIMIT ?1) \
             GROUP BY topic",
        )
        .bind(i64::try_from(window).unwrap_or(i64::MAX))
        .fetch_all(&self.readers)
        .await?)
    }

    async fn consumers(&self) -> Result<Vec<ConsumerRow>> {
        let sql = format!(
            "SELECT consumer, sum(events), min(idle_ms) FROM ({}) \
             GROUP BY consumer ORDER BY consumer",
            CONSUMERS.replace("PENDING", PENDING)
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(&self.group)
            .bind(now_ms())
            .bind(self.lease_ms)
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(ListingRow::consumer_row).collect()
    }

    async fn retry_event(&self, id: i64) -> Result<u64> {
        let done = sqlx::query(
            "INSERT INTO soiree_retries (group_name, event_row, topic, event_id, payload, \
               properties, deliveries, run_at, key) \
             SELECT ?1, id, topic, event_id, payload, properties, 0, ?3, key \
             FROM soiree_events WHERE id = ?2",
        )
        .bind(&self.group)
        .bind(id)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn retry_dead_copy(&self, id: i64) -> Result<u64> {
        let done = sqlx::query(concat!(
            "INSERT INTO soiree_retries (group_name, event_row, topic, event_id, payload, \
                   properties, deliveries, error, run_at, key) \
                 SELECT group_name, event_row, coalesce(topic, ''), event_id, payload, \
                   properties, 0, error, ?3, ",
            key_from_properties!(),
            " FROM soiree_dead_letters WHERE group_name = ?1 AND id = ?2"
        ))
        .bind(&self.group)
        .bind(id)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn replay_dead_ids(&self, ids: &[i64]) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let moved = self.move_dead(&mut tx, ids).await?;
        tx.commit().await?;
        Ok(moved)
    }

    async fn purge_dead(&self, ids: Option<&[i64]>) -> Result<u64> {
        let param = ids.map(serde_json::to_string).transpose()?;
        let done = sqlx::query(
            "DELETE FROM soiree_dead_letters WHERE group_name = ?1 \
               AND (?2 IS NULL OR id IN (SELECT value FROM json_each(?2)))",
        )
        .bind(&self.group)
        .bind(param)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn prune(&self, older_than_ms: i64, batch: usize) -> Result<u64> {
        // One short write per batch: the writer is not held for long.
        let done = sqlx::query(
            "DELETE FROM soiree_events WHERE id IN ( \
               SELECT id FROM soiree_events \
               WHERE id <= (SELECT min(claimed_id) FROM soiree_cursors) \
                 AND id < coalesce((SELECT min(lo_id) FROM soiree_leases), 9223372036854775807) \
                 AND created_at < strftime('%Y-%m-%dT%H:%M:%fZ', ?1 / 1000.0, 'unixepoch') \
               ORDER BY id LIMIT ?2)",
        )
        .bind(now_ms() - older_than_ms)
        .bind(i64::try_from(batch).unwrap_or(i64::MAX))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn oldest_unconsumed_ms(&self) -> Result<Option<i64>> {
        let oldest: Option<f64> = sqlx::query_scalar(OLDEST)
            .bind(&self.group)
            .fetch_one(&self.readers)
            .await?;
        #[allow(clippy::cast_possible_truncation)]
        Ok(oldest.map(|ms| ms.max(0.0).round() as i64))
    }

    async fn xmin_lag(&self) -> Result<Option<i64>> {
        Ok(None)
    }

    async fn key_blockers(
        &self,
        keys: &[String],
        before: Pos,
        own_leases: &[(i64, i64)],
        own_retries: &[(i64, i64)],
    ) -> Result<Vec<(String, Pos)>> {
        // Per key, the earliest event before the bound that is in a lease or
        // in the retry table of the group, other than this consumer's own
        // leases and retry rows (tracked in memory). The events of a lease
        // are found through the log's primary key.
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT k, min(i) FROM ( \
               SELECT e.key AS k, e.id AS i FROM soiree_leases l \
               JOIN soiree_events e ON e.id BETWEEN l.lo_id AND l.hi_id \
               WHERE l.group_name = ?1 AND l.lo_id < ?3 AND e.id < ?3 \
                 AND e.key IN (SELECT value FROM json_each(?2)) \
                 AND (l.id, l.token) NOT IN (SELECT value->>0, value->>1 FROM json_each(?4)) \
               UNION ALL \
               SELECT r.key, r.event_row FROM soiree_retries r \
               WHERE r.group_name = ?1 AND r.event_row < ?3 \
                 AND r.key IN (SELECT value FROM json_each(?2)) \
                 AND (r.id, r.token) NOT IN (SELECT value->>0, value->>1 FROM json_each(?5))) \
             GROUP BY k",
        )
        .bind(&self.group)
        .bind(serde_json::to_string(keys)?)
        .bind(before.id)
        .bind(pairs_json(own_leases))
        .bind(pairs_json(own_retries))
        .fetch_all(&self.readers)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(key, id)| (key, Pos { tx: 0, id }))
            .collect())
    }

    async fn notify_others(&self) -> Result<()> {
        Ok(())
    }

    async fn beat(&self, live_ms: i64) -> Result<()> {
        let now = now_ms();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM soiree_consumers WHERE group_name = ?1 AND expires_at < ?2")
            .bind(&self.group)
            .bind(now.saturating_sub(86_400_000))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO soiree_consumers (group_name, consumer, last_seen, expires_at) \
             VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (group_name, consumer) DO UPDATE \
               SET last_seen = excluded.last_seen, expires_at = excluded.expires_at",
        )
        .bind(&self.group)
        .bind(&self.consumer)
        .bind(now)
        .bind(now.saturating_add(live_ms))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn lacking(&self, _grants: &[(&'static str, &'static str)]) -> Result<String> {
        Ok(
            "the database file is read-only to this store: opened with mode=ro (or read_only), \
            or this user may not write the file or its directory"
                .to_owned(),
        )
    }
}

impl SqliteBackend {
    /// The rows of a listing, read through the readers.
    async fn listing(&self, listing: &Listing, scan: &Scan) -> Result<Vec<SqliteRow>> {
        let (sql, params) = scan.sql(listing, &self.group, placeholder);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for param in params {
            query = match param {
                Param::Int(value) => query.bind(value),
                Param::Text(value) => query.bind(value),
            };
        }
        Ok(query.fetch_all(&self.readers).await?)
    }

    /// Moves the group's dead letters with these ids to the retry table,
    /// due at once, inside `tx`; returns how many.
    async fn move_dead(&self, tx: &mut SqliteConnection, ids: &[i64]) -> Result<u64> {
        let param = serde_json::to_string(ids)?;
        let moved = sqlx::query(concat!(
            "INSERT INTO soiree_retries (group_name, event_row, topic, event_id, payload, \
                   properties, deliveries, error, run_at, key) \
                 SELECT group_name, event_row, coalesce(topic, ''), event_id, payload, \
                   properties, 0, error, ?2, ",
            key_from_properties!(),
            " FROM soiree_dead_letters \
                 WHERE group_name = ?3 AND id IN (SELECT value FROM json_each(?1)) ORDER BY id"
        ))
        .bind(&param)
        .bind(now_ms())
        .bind(&self.group)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM soiree_dead_letters \
             WHERE group_name = ?2 AND id IN (SELECT value FROM json_each(?1))",
        )
        .bind(&param)
        .bind(&self.group)
        .execute(&mut *tx)
        .await?;
        Ok(moved.rows_affected())
    }

    /// Whether events wait past the group's claimed position.
    async fn waiting_unclaimed(&self, pool: &SqlitePool) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM soiree_events WHERE id > \
               (SELECT claimed_id FROM soiree_cursors WHERE group_name = ?1))",
        )
        .bind(&self.group)
        .fetch_one(pool)
        .await?)
    }
}
