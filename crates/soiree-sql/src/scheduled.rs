//! Delayed events: an event whose due time (`soiree.due_at`) is later
//! waits in `soiree_scheduled`, out of the log, so that it never blocks the
//! groups' cursors and no group can claim it early. Consumers move due rows
//! into the log (a bounded batch per fill, `SKIP LOCKED` on PostgreSQL),
//! where every group gets them as newly appended events. Cancelling deletes
//! the row: no group has seen it yet.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use soiree::{Page, Query, ScheduledEvent, StoredEvent};

use crate::backend::{Backend, NewEvent, Param, RawEvent, to_us};
use crate::core::Core;
use crate::rows::Listed;
use crate::{Error, Result};

/// A row of `soiree_scheduled` for a listing.
#[derive(Debug)]
pub struct ScheduledRow {
    pub(crate) id: i64,
    pub(crate) due_ms: i64,
    pub(crate) event: RawEvent,
}

/// The statement of delayed events whose logic differs per database
/// (locking, transactions); the others are written once, on each
/// database's [`CommonSql`](crate::backend::CommonSql).
#[async_trait]
pub trait Schedule {
    /// Moves at most `max` rows due at `now_ms` into the log, soonest
    /// first, in one transaction; returns how many.
    async fn move_due(&self, now_ms: i64, max: usize) -> Result<u64>;
}

/// The parameters of [`CommonSql::schedule`](crate::backend::CommonSql).
pub(crate) fn schedule_params(event: &NewEvent, due_ms: i64) -> Vec<Param> {
    vec![
        Param::Text(event.topic.clone()),
        Param::MaybeText(event.event_id.clone()),
        Param::Text(event.payload.clone()),
        Param::Text(event.properties.clone()),
        Param::MaybeText(event.key.clone()),
        Param::Int(due_ms),
    ]
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    to_us(SystemTime::now(), false).div_euclid(1000)
}

/// Unix milliseconds as a time (before the epoch: the epoch).
pub(crate) fn system_time(ms: i64) -> SystemTime {
    u64::try_from(ms)
        .ok()
        .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(ms)))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The due time of an event in Unix milliseconds, rounded up (never
/// early); `None` without one.
pub(crate) fn due_ms(event: &StoredEvent) -> Result<Option<i64>> {
    let due = event.due_at().map_err(Error::Event)?;
    Ok(due.map(|due| to_us(due, true).saturating_add(999).div_euclid(1000)))
}

/// Delayed rows moved into the log per fill at most.
pub(crate) const MOVE_BATCH: usize = 500;

/// The shortest wait for a due time (see [`Core::next_due_at`]).
pub(crate) const MIN_DUE_PAUSE: Duration = Duration::from_millis(5);

impl<B: Backend> Core<B> {
    /// Stores an event whose due time is later in the scheduled table;
    /// `false` when it is due already (the caller appends it).
    pub(crate) async fn append_delayed(&self, event: &StoredEvent) -> Result<bool> {
        let Some(due) = due_ms(event)? else {
            return Ok(false);
        };
        if due <= now_ms() {
            return Ok(false);
        }
        let new = NewEvent::from_stored(event)?;
        let sql = B::COMMON.schedule.to_owned();
        self.backend
            .execute(sql, schedule_params(&new, due))
            .await?;
        self.metrics.persisted.inc();
        // Sooner than this process's consumers wait for: they look again.
        if due < self.next_due_ms.fetch_min(due, Ordering::AcqRel) {
            self.wake_local();
        }
        Ok(true)
    }

    /// Moves due delayed events into the log; whether any moved.
    pub(crate) async fn move_due(&self) -> Result<bool> {
        let moved = self.backend.move_due(now_ms(), MOVE_BATCH).await?;
        if moved > 0 {
            self.wake();
        }
        // What is due next, whoever scheduled it (another process too).
        let next = self
            .backend
            .fetch(B::COMMON.next_due.to_owned(), Vec::new())
            .await?;
        let next = match next.first() {
            Some(row) => row.int(0)?,
            None => i64::MAX,
        };
        self.next_due_ms.store(next, Ordering::Release);
        Ok(moved > 0)
    }

    /// When the earliest known delayed event falls due (`None`: none
    /// known), never sooner than [`MIN_DUE_PAUSE`] from now: a due row
    /// another consumer holds locked is not looked at in a busy loop.
    pub(crate) fn next_due_at(&self) -> Option<tokio::time::Instant> {
        let due = self.next_due_ms.load(Ordering::Acquire);
        if due == i64::MAX {
            return None;
        }
        let wait = u64::try_from(due.saturating_sub(now_ms())).unwrap_or(0);
        Some(tokio::time::Instant::now() + Duration::from_millis(wait).max(MIN_DUE_PAUSE))
    }

    /// Cancels a delayed event not yet due (deletes the delayed events
    /// with this event id); whether there was one.
    pub(crate) async fn cancel_scheduled(&self, event_id: &str) -> Result<bool> {
        let sql = format!(
            "DELETE FROM soiree_scheduled WHERE event_id = {}",
            B::placeholder(1)
        );
        let params = vec![Param::Text(event_id.to_owned())];
        Ok(self.backend.execute(sql, params).await? > 0)
    }

    /// How many delayed events wait.
    pub(crate) async fn scheduled_count(&self) -> Result<u64> {
        let sql = "SELECT count(*) FROM soiree_scheduled".to_owned();
        let rows = self.backend.fetch(sql, Vec::new()).await?;
        let n = match rows.first() {
            Some(row) => row.int(0)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Delayed events after `after` (`(due_ms, id)`), soonest first (with
    /// `newest_first`, latest first and before `after`), at most `limit`.
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
        let p = B::placeholder;
        let sql = format!(
            "SELECT id, due_ms, topic, payload, properties FROM soiree_scheduled \
             WHERE (due_ms, id) {cmp} ({}, {}) ORDER BY due_ms {order}, id {order} LIMIT {}",
            p(1),
            p(2),
            p(3)
        );
        // Past every row when there is no cursor.
        let edge = if newest_first { i64::MAX } else { i64::MIN };
        let (due, id) = after.unwrap_or((edge, edge));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let params = vec![Param::Int(due), Param::Int(id), Param::Int(limit)];
        let rows = self.backend.fetch(sql, params).await?;
        rows.iter().map(Listed::scheduled_row).collect()
    }

    /// A page of delayed events, soonest first; the filter applies to the
    /// events (rows that are not events are shown lossily).
    pub(crate) async fn scheduled_records(&self, query: &Query) -> Result<Page<ScheduledEvent>> {
        let limit = query.limit.clamp(1, Query::MAX_LIMIT);
        let mut after = match &query.cursor {
            Some(cursor) => Some(parse_cursor(cursor)?),
            None => None,
        };
        let mut items = Vec::new();
        // Bounded: a filter that matches little reads at most this many pages.
        for _ in 0..16 {
            let rows = self
                .scheduled_rows(after, query.newest_first, limit)
                .await?;
            let last_page = rows.len() < limit;
            for row in rows {
                after = Some((row.due_ms, row.id));
                let event = row.event.parse_lossy();
                if !query.filter.matches_event(&event, None) {
                    continue;
                }
                let due = crate::backend::from_us(row.due_ms.saturating_mul(1000));
                items.push(ScheduledEvent::new(
                    format!("{}.{}", row.due_ms, row.id),
                    due,
                    event,
                ));
                if items.len() == limit {
                    let next = after.map(|(due, id)| format!("{due}.{id}"));
                    return Ok(Page { items, next });
                }
            }
            if last_page {
                return Ok(Page { items, next: None });
            }
        }
        let next = after.map(|(due, id)| format!("{due}.{id}"));
        Ok(Page { items, next })
    }
}

/// A listing cursor `due_ms.id`.
fn parse_cursor(cursor: &str) -> Result<(i64, i64)> {
    cursor
        .split_once('.')
        .and_then(|(due, id)| Some((due.parse().ok()?, id.parse().ok()?)))
        .ok_or_else(|| Error::InvalidCursor(cursor.chars().take(64).collect()))
}
