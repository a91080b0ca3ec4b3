//! The SQLite SQL of the store: one writer connection (`BEGIN IMMEDIATE`
//! for every multi-statement write) and a pool of readers.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{Value, json};
use soiree::StoredResult;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};

use super::statements::{APPEND_ROWS, HANDLED_ROWS, RESULT_ROWS, SQL};
use crate::Result;
use crate::SqlDeadLetterFilter;
use crate::backend::{
    Backend, CommonSql, ConsumerRow, Counts, DeadRow, FailedRetry, FailedRow, LeaseRow, NewEvent,
    Param, PendingRow, Pos, RawEvent, RetryRow, Run, bind_params,
};
use crate::rows::{self, ListingRow, Listings};

/// A row's time (stored to the millisecond) in microseconds since the epoch.
const AT_US: &str =
    "(CAST(round((julianday(created_at) - 2440587.5) * 86400000.0) AS INTEGER) * 1000)";

/// The SQLite side of a store.
#[derive(Debug)]
pub struct SqliteBackend {
    pub(crate) writer: SqlitePool,
    pub(crate) readers: SqlitePool,
    /// Shared, not copied, by every parameter that binds it (a results
    /// row binds it once per row).
    pub(crate) group: Arc<str>,
    pub(crate) consumer: String,
    pub(crate) lease_ms: i64,
}

/// The JSON parameter of [`APPEND`]: written straight from the borrowed
/// columns (a `Value` per row would copy every string first).
pub(crate) fn append_param(events: &[NewEvent]) -> Result<String> {
    let rows: Vec<_> = events
        .iter()
        .map(|e| (&e.topic, &e.event_id, &e.payload, &e.properties, &e.key))
        .collect();
    Ok(serde_json::to_string(&rows)?)
}

/// Appends `events` on `conn`, in order, as one write (all or none, also
/// inside the caller's transaction).
pub(crate) async fn insert_events(conn: &mut SqliteConnection, events: &[NewEvent]) -> Result<()> {
    APPEND_ROWS
        .run_atomic(conn, events, |query, e| {
            query
                .bind(&e.topic)
                .bind(&e.event_id)
                .bind(&e.payload)
                .bind(&e.properties)
                .bind(&e.key)
        })
        .await
}

/// [`insert_events`] of rows the caller is done with: their strings are
/// moved into the statement's parameters, where binding borrowed ones
/// copies each (sqlx keeps its parameters owned).
pub(crate) async fn insert_owned_events(
    conn: &mut SqliteConnection,
    events: Vec<NewEvent>,
) -> Result<()> {
    let Some(query) = APPEND_ROWS.one_statement(events.len()) else {
        return insert_events(conn, &events).await;
    };
    let query = events.into_iter().fold(query, |query, e| {
        query
            .bind(e.topic)
            .bind(e.event_id)
            .bind(e.payload)
            .bind(e.properties)
            .bind(e.key)
    });
    query.execute(conn).await?;
    Ok(())
}

/// A result's text columns as shared strings, bound without a copy: a
/// borrowed string is copied twice per parameter (sqlx's `String`, then
/// its `Arc`), and a batch's topic and listener repeat row after row while
/// its event id goes to both tables.
struct ResultColumns<'a> {
    topic: Arc<str>,
    event_id: Arc<str>,
    handler_id: Arc<str>,
    result: &'a StoredResult,
}

/// [`ResultColumns`] of `results`; a value equal to the previous row's is
/// shared with it.
fn shared_columns(results: &[StoredResult]) -> Vec<ResultColumns<'_>> {
    fn share(last: &mut Option<Arc<str>>, value: &str) -> Arc<str> {
        match last {
            Some(shared) if **shared == *value => Arc::clone(shared),
            _ => Arc::clone(last.insert(Arc::from(value))),
        }
    }
    let (mut topic, mut handler_id) = (None, None);
    results
        .iter()
        .map(|result| ResultColumns {
            topic: share(&mut topic, &result.topic),
            event_id: Arc::from(result.event_id.as_str()),
            handler_id: share(&mut handler_id, &result.handler_id),
            result,
        })
        .collect()
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
    Ok(sqlx::query_scalar(SQL.next_token).fetch_one(conn).await?)
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
        let row = sqlx::query(SQL.insert_lease)
            .bind(Arc::clone(&self.group))
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
    type ListedRow = SqliteRow;
    const LISTINGS: Listings = rows::listings(AT_US, "id, AT_US, topic, payload, properties");
    const COMMON: CommonSql = super::common::COMMON;

    fn lock_scope(&self) -> &str {
        ""
    }

    fn placeholder(n: usize) -> String {
        format!("?{n}")
    }

    fn group(&self) -> &str {
        &self.group
    }

    async fn fetch(&self, sql: String, params: Vec<Param>) -> Result<Vec<Self::ListedRow>> {
        let query = bind_params(sqlx::query(AssertSqlSafe(sql)), params);
        Ok(query.fetch_all(&self.readers).await?)
    }

    async fn fetch_written(&self, sql: String, params: Vec<Param>) -> Result<Vec<Self::ListedRow>> {
        let query = bind_params(sqlx::query(AssertSqlSafe(sql)), params);
        Ok(query.fetch_all(&self.writer).await?)
    }

    async fn execute(&self, sql: String, params: Vec<Param>) -> Result<u64> {
        let query = bind_params(sqlx::query(AssertSqlSafe(sql)), params);
        Ok(query.execute(&self.writer).await?.rows_affected())
    }

    async fn append(&self, events: &[NewEvent]) -> Result<()> {
        insert_events(&mut *self.writer.acquire().await?, events).await
    }

    async fn save_results(&self, results: &[StoredResult]) -> Result<()> {
        let rows = shared_columns(results);
        // Results and successes are the group's own: another group's
        // listener of the same name has not run for this one.
        let succeeded: Vec<&ResultColumns<'_>> = rows
            .iter()
            .filter(|r| r.result.error.is_none() && !r.result.event_id.is_empty())
            .collect();
        let mut tx = self.write_tx().await?;
        RESULT_ROWS
            .run(&mut tx, &rows, |query, r| {
                query
                    .bind(Arc::clone(&r.topic))
                    .bind(Arc::clone(&r.event_id))
                    .bind(Arc::clone(&r.handler_id))
                    .bind(&r.result.error)
                    .bind(i64::from(r.result.attempt))
                    .bind(Arc::clone(&self.group))
            })
            .await?;
        HANDLED_ROWS
            .run(&mut tx, &succeeded, |query, r| {
                query
                    .bind(Arc::clone(&r.event_id))
                    .bind(Arc::clone(&self.group))
                    .bind(Arc::clone(&r.handler_id))
            })
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn succeeded(&self, event_ids: &[String]) -> Result<Vec<(String, String)>> {
        let param = serde_json::to_string(event_ids)?;
        let rows = sqlx::query(SQL.succeeded)
            .bind(param)
            .bind(Arc::clone(&self.group))
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
        let claimed: i64 = sqlx::query_scalar(SQL.claimed_position)
            .bind(Arc::clone(&self.group))
            .fetch_one(&mut *tx)
            .await?;
        let (lo, hi, n): (Option<i64>, Option<i64>, i64) = sqlx::query_as(SQL.claim_range)
            .bind(claimed)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .fetch_one(&mut *tx)
            .await?;
        let (Some(lo), Some(hi)) = (lo, hi) else {
            tx.rollback().await?;
            return Ok(None);
        };
        sqlx::query(SQL.advance_cursor)
            .bind(Arc::clone(&self.group))
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
        let expired: bool = sqlx::query_scalar(SQL.any_expired)
            .bind(Arc::clone(&self.group))
            .bind(now)
            .fetch_one(&self.readers)
            .await?;
        if !expired {
            return Ok(None);
        }
        let mut tx = self.write_tx().await?;
        let id: Option<i64> = sqlx::query_scalar(SQL.first_expired)
            .bind(Arc::clone(&self.group))
            .bind(now_ms())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(id) = id else {
            tx.rollback().await?;
            return Ok(None);
        };
        let token = next_token(&mut tx).await?;
        let row = sqlx::query(SQL.reclaim)
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
        // Read before the drop, whose trigger deletes the lease's acks.
        let ids: Vec<i64> = sqlx::query_scalar(SQL.lease_event_rows)
            .bind(old.lo.id)
            .bind(old.hi.id)
            .bind(old.id)
            .fetch_all(&mut *tx)
            .await?;
        let deleted = sqlx::query(SQL.drop_lease)
            .bind(old.id)
            .bind(old.token)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
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
        // Copied before the drop, whose trigger deletes the lease's acks
        // (rolled back when the lease is no longer this token's).
        let moved = sqlx::query(SQL.dead_letter_lease)
            .bind(Arc::clone(&self.group))
            .bind(lease.lo.id)
            .bind(lease.hi.id)
            .bind(lease.deliveries)
            .bind(i64::from(max_deliveries))
            .bind(lease.id)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query(SQL.drop_lease)
            .bind(lease.id)
            .bind(lease.token)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(0);
        }
        tx.commit().await?;
        Ok(moved.rows_affected())
    }

    async fn read(&self, lease: &LeaseRow) -> Result<Vec<RawEvent>> {
        // A first delivery has no acknowledged events: the plain read.
        let rows = if lease.deliveries > 1 {
            sqlx::query(SQL.read_unacked)
                .bind(lease.lo.id)
                .bind(lease.hi.id)
                .bind(lease.id)
                .fetch_all(&self.readers)
                .await?
        } else {
            sqlx::query(SQL.read)
                .bind(lease.lo.id)
                .bind(lease.hi.id)
                .fetch_all(&self.readers)
                .await?
        };
        rows.iter().map(ListingRow::raw_event).collect()
    }

    async fn dead_letter_rows(&self, rows: &[DeadRow]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for row in rows {
            sqlx::query(SQL.dead_letter_row)
                .bind(Arc::clone(&self.group))
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
        Ok(sqlx::query_scalar(SQL.complete)
            .bind(pairs_json(leases))
            .fetch_all(&self.writer)
            .await?)
    }

    async fn extend(&self, leases: &[(i64, i64)]) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(SQL.extend)
            .bind(pairs_json(leases))
            .bind(now_ms() + self.lease_ms)
            .fetch_all(&self.writer)
            .await?)
    }

    async fn backlog(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(SQL.backlog)
            .bind(Arc::clone(&self.group))
            .fetch_one(&self.readers)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn events_page(&self, after: Option<Pos>, limit: usize) -> Result<Vec<RawEvent>> {
        let rows = sqlx::query(SQL.events_page)
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
        let rows = sqlx::query(SQL.results_page)
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
                .map(|r| json!([r.lease, r.token, r.pos.id, r.error, r.delay_ms, r.uncounted]))
                .collect(),
        )
        .to_string();
        let sql = if retry {
            SQL.fail_leased_retry
        } else {
            SQL.fail_leased_dead
        };
        let done = sqlx::query(sql)
            .bind(Arc::clone(&self.group))
            .bind(param)
            .bind(now_ms())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn claim_retries(&self, max: usize) -> Result<Vec<RetryRow>> {
        let now = now_ms();
        let due: bool = sqlx::query_scalar(SQL.any_due_retry)
            .bind(Arc::clone(&self.group))
            .bind(now)
            .fetch_one(&self.readers)
            .await?;
        if !due {
            return Ok(Vec::new());
        }
        let mut tx = self.write_tx().await?;
        let token = next_token(&mut tx).await?;
        let rows = sqlx::query(SQL.claim_retries)
            .bind(Arc::clone(&self.group))
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
        Ok(sqlx::query_scalar(SQL.ack_retries)
            .bind(pairs_json(rows))
            .fetch_all(&self.writer)
            .await?)
    }

    async fn fail_retries(&self, rows: &[FailedRetry], retry: bool) -> Result<u64> {
        let param = Value::Array(
            rows.iter()
                .map(|r| json!([r.id, r.token, r.error, r.delay_ms, r.uncounted]))
                .collect(),
        )
        .to_string();
        if retry {
            let done = sqlx::query(SQL.retry_again)
                .bind(&param)
                .bind(now_ms())
                .execute(&self.writer)
                .await?;
            return Ok(done.rows_affected());
        }
        let mut tx = self.write_tx().await?;
        let moved = sqlx::query(SQL.retries_dead)
            .bind(&param)
            .execute(&mut *tx)
            .await?;
        sqlx::query(SQL.delete_retries)
            .bind(&param)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(moved.rows_affected())
    }

    async fn extend_retries(&self, rows: &[(i64, i64)]) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(SQL.extend_retries)
            .bind(pairs_json(rows))
            .bind(now_ms() + self.lease_ms)
            .fetch_all(&self.writer)
            .await?)
    }

    async fn release_retries(&self, rows: &[(i64, i64)]) -> Result<()> {
        sqlx::query(SQL.release_retries)
            .bind(pairs_json(rows))
            .bind(now_ms())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn hand_back(&self, lease: (i64, i64), runs: &[Run]) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let held: Option<(i32, String)> = sqlx::query_as(SQL.held_lease)
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
            sqlx::query(SQL.hand_back)
                .bind(Arc::clone(&self.group))
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
        let ids: Vec<i64> = sqlx::query_scalar(SQL.dead_ids)
            .bind(Arc::clone(&self.group))
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

    async fn counts(&self) -> Result<Counts> {
        let row = sqlx::query(SQL.counts)
            .bind(Arc::clone(&self.group))
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
            (SQL.pending_desc, (2, 0))
        } else {
            (SQL.pending_asc, (-1, 0))
        };
        let (kind, id) = after.unwrap_or(start);
        let rows = sqlx::query(sql)
            .bind(Arc::clone(&self.group))
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
        Ok(sqlx::query_as(SQL.topic_counts)
            .bind(i64::try_from(window).unwrap_or(i64::MAX))
            .fetch_all(&self.readers)
            .await?)
    }

    async fn consumers(&self) -> Result<Vec<ConsumerRow>> {
        let rows = sqlx::query(SQL.consumers)
            .bind(Arc::clone(&self.group))
            .bind(now_ms())
            .bind(self.lease_ms)
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(ListingRow::consumer_row).collect()
    }

    async fn retry_event(&self, id: i64) -> Result<u64> {
        let done = sqlx::query(SQL.retry_event)
            .bind(Arc::clone(&self.group))
            .bind(id)
            .bind(now_ms())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn retry_dead_copy(&self, id: i64) -> Result<u64> {
        let done = sqlx::query(SQL.retry_dead_copy)
            .bind(Arc::clone(&self.group))
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
        let done = sqlx::query(SQL.purge_dead)
            .bind(Arc::clone(&self.group))
            .bind(param)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn prune(&self, older_than_ms: i64, batch: usize) -> Result<u64> {
        // One short write per batch: the writer is not held for long.
        let done = sqlx::query(SQL.prune)
            .bind(now_ms() - older_than_ms)
            .bind(i64::try_from(batch).unwrap_or(i64::MAX))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn oldest_unconsumed_ms(&self) -> Result<Option<i64>> {
        let oldest: Option<f64> = sqlx::query_scalar(SQL.oldest)
            .bind(Arc::clone(&self.group))
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
        let rows: Vec<(String, i64)> = sqlx::query_as(SQL.key_blockers)
            .bind(Arc::clone(&self.group))
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
        sqlx::query(SQL.expire_consumers)
            .bind(Arc::clone(&self.group))
            .bind(now.saturating_sub(86_400_000))
            .execute(&mut *tx)
            .await?;
        sqlx::query(SQL.beat)
            .bind(Arc::clone(&self.group))
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
    /// Moves the group's dead letters with these ids to the retry table,
    /// due at once, inside `tx`; returns how many.
    async fn move_dead(&self, tx: &mut SqliteConnection, ids: &[i64]) -> Result<u64> {
        let param = serde_json::to_string(ids)?;
        let moved = sqlx::query(SQL.move_dead)
            .bind(&param)
            .bind(now_ms())
            .bind(Arc::clone(&self.group))
            .execute(&mut *tx)
            .await?;
        sqlx::query(SQL.delete_dead)
            .bind(&param)
            .bind(Arc::clone(&self.group))
            .execute(&mut *tx)
            .await?;
        Ok(moved.rows_affected())
    }

    /// Whether events wait past the group's claimed position.
    async fn waiting_unclaimed(&self, pool: &SqlitePool) -> Result<bool> {
        Ok(sqlx::query_scalar(SQL.waiting_unclaimed)
            .bind(Arc::clone(&self.group))
            .fetch_one(pool)
            .await?)
    }
}
