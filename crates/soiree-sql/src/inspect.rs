//! [`soiree::Inspect`] for both stores: the paging, filtering, stats and
//! repairs are shared here, on statements each backend supplies.
//!
//! - Listings page by row id (`ORDER BY id`): the log's identity (PostgreSQL;
//!   ids are handed out at insert, so a transaction committing late shows
//!   up below ids already listed) or rowid (SQLite: commit order). The event
//!   id and the time range are tested in SQL (an index on `event_id`);
//!   topic patterns, which are not `LIKE` patterns, in Rust. A call reads at
//!   most [`Query::scan_budget`] rows.
//! - Pending deliveries are the group's live leases (ids `<lease id>`, each
//!   covering a range of the log) then its claimed retry rows (ids
//!   `r<row id>`); a lease's idle time counts from when it was taken or last
//!   extended (its expiry less the lease timeout of this store); each lists
//!   the ids of the events it covers (at most 100) and the time left before
//!   it expires.
//! - Consumers are those whose heartbeat is live (a consuming store records
//!   itself every third of its lease timeout, live for one lease timeout,
//!   whether or not it holds a lease), and those holding deliveries.
//! - Replays go through the group's retry table: only this store's group
//!   gets the event again, with its event id, and the log is not copied.

use std::future::Future;
use std::time::Duration;

use soiree::{
    ConsumerInfo, DeadLetterSelection, Filter, Page, PendingDelivery, Query, Record, StoreStats,
    StoredEvent, StoredResult,
};

use crate::backend::{Backend, PendingRow, RawEvent, Row, Scan, from_us, to_us};
use crate::core::Core;
use crate::{Error, Result};

/// Rows read per statement when a filter is checked in Rust.
const CHUNK: usize = 1_000;
/// Dead letters moved or deleted per statement.
const BATCH: usize = 1_000;

impl<B: Backend> Core<B> {
    /// Counts of the store in one statement, the backlog less what this
    /// consumer acknowledged in leases it still holds; sets the gauges.
    pub(crate) async fn inspect_stats(&self) -> Result<StoreStats> {
        self.flush_results().await?;
        let (counts, acked_here) = self.read_less_acked(|| self.backend.counts()).await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let backlog = count(counts.backlog).saturating_sub(acked_here);
        // A lease this consumer holds until its deletion is written still
        // names its first event in the database although every event of it
        // is acknowledged here: with nothing left, nothing is pending.
        let oldest = counts
            .oldest_ms
            .filter(|_| backlog > 0)
            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
        self.metrics
            .queue_length
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        self.metrics
            .oldest_unconsumed
            .set(oldest.map_or(0.0, |age| age.as_secs_f64()));
        let mut stats = StoreStats::default();
        stats.taken_at = Some(std::time::SystemTime::now());
        stats.emitted = count(counts.emitted);
        stats.events = count(counts.events);
        stats.results = count(counts.results);
        stats.backlog = backlog;
        stats.in_flight = count(counts.in_flight).saturating_sub(acked_here);
        stats.dead_letters = count(counts.dead_letters);
        stats.consumers = count(counts.consumers);
        stats.oldest_pending_age = oldest;
        stats.scheduled = self.scheduled_count().await?;
        Ok(stats)
    }

    /// A page of the log; rows that are not events are shown lossily.
    pub(crate) async fn event_records(&self, query: &Query) -> Result<Page<Record<StoredEvent>>> {
        let backend = &self.backend;
        let filter = &query.filter;
        scan_listing(
            query,
            move |scan| async move { backend.event_rows(&scan).await },
            |row: &Row<RawEvent>| row.id,
            |row| event_record(filter, row),
        )
        .await
    }

    /// A page of the listener results.
    pub(crate) async fn result_records(&self, query: &Query) -> Result<Page<Record<StoredResult>>> {
        self.flush_results().await?;
        let backend = &self.backend;
        let filter = &query.filter;
        scan_listing(
            query,
            move |scan| async move { backend.result_rows(&scan).await },
            |row: &Row<StoredResult>| row.id,
            |row| {
                let at = row.at_us.map(from_us);
                filter.matches_result(&row.item, at).then(|| Record {
                    id: row.id.to_string(),
                    at,
                    item: row.item,
                })
            },
        )
        .await
    }

    /// A page of the group's dead letters.
    pub(crate) async fn dead_letter_records(
        &self,
        query: &Query,
    ) -> Result<Page<soiree::DeadLetter>> {
        let backend = &self.backend;
        let filter = &query.filter;
        scan_listing(
            query,
            move |scan| async move { backend.dead_letters(&scan).await },
            |letter: &crate::SqlDeadLetter| letter.id,
            |letter| {
                let (topic, event_id) = (letter.topic.clone(), letter.event_id.clone());
                let letter = soiree::DeadLetter::from(letter);
                let selected = match &letter.event {
                    Some(event) => filter.matches_event(event, letter.at),
                    None => filter.matches(
                        topic.as_deref().unwrap_or_default(),
                        event_id.as_deref(),
                        letter.at,
                    ),
                };
                selected.then_some(letter)
            },
        )
        .await
    }

    /// Per-topic counts of the newest `window` rows of the log, counted by
    /// the database (rows that are not events count under their topic).
    pub(crate) async fn topic_counts(&self, window: usize) -> Result<soiree::inspect::TopicCounts> {
        let counts = self.backend.topic_counts(window).await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let scanned = counts.iter().map(|(_, n)| count(*n)).sum();
        Ok(soiree::inspect::TopicCounts::new(
            scanned,
            counts.into_iter().map(|(topic, n)| (topic, count(n))),
        ))
    }

    /// One dead letter of the group by id (an indexed read).
    pub(crate) async fn dead_letter_by_id(&self, id: &str) -> Result<Option<soiree::DeadLetter>> {
        let Some(before) = id.parse::<i64>().ok().and_then(|id| id.checked_sub(1)) else {
            return Ok(None);
        };
        let rows = self
            .backend
            .dead_letters(&Scan {
                cursor: Some(before),
                limit: 1,
                ..Scan::default()
            })
            .await?;
        Ok(rows
            .into_iter()
            .find(|letter| letter.id.to_string() == id)
            .map(soiree::DeadLetter::from))
    }

    /// A page of the group's live leases, then its claimed retry rows.
    pub(crate) async fn pending_deliveries(&self, query: &Query) -> Result<Page<PendingDelivery>> {
        let after = query
            .cursor
            .as_deref()
            .map(|cursor| parse_pending_id(cursor).ok_or_else(|| invalid_cursor(cursor)))
            .transpose()?;
        let limit = query.limit.clamp(1, Query::MAX_LIMIT);
        let mut rows = self
            .backend
            .pending(after, query.newest_first, limit + 1)
            .await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = more.then(|| rows.last().map(pending_id)).flatten();
        let items = rows
            .into_iter()
            .map(|row| {
                let id = pending_id(&row);
                let idle = Duration::from_millis(u64::try_from(row.idle_ms).unwrap_or(0));
                let deliveries = u32::try_from(row.deliveries).unwrap_or(0);
                let event_ids: Vec<Option<String>> = row
                    .event_ids
                    .as_deref()
                    .and_then(|ids| serde_json::from_str(ids).ok())
                    .unwrap_or_default();
                let expires_in = row
                    .expires_ms
                    .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
                PendingDelivery::new(id, row.consumer, idle, deliveries)
                    .events(u64::try_from(row.events).unwrap_or(0))
                    .event_ids(event_ids.into_iter().flatten().collect())
                    .expires_in(expires_in)
                    .event(row.event.map(|raw| raw.parse_lossy()))
            })
            .collect();
        Ok(Page { items, next })
    }

    /// The consumers of the group: holding live leases or claimed retry
    /// rows, or with a live heartbeat; idle since their last heartbeat or
    /// lease extension.
    pub(crate) async fn consumer_infos(&self) -> Result<Vec<ConsumerInfo>> {
        Ok(self
            .backend
            .consumers()
            .await?
            .into_iter()
            .map(|row| {
                ConsumerInfo::new(
                    row.name,
                    u64::try_from(row.pending).unwrap_or(0),
                    Some(Duration::from_millis(
                        u64::try_from(row.idle_ms).unwrap_or(0),
                    )),
                )
            })
            .collect())
    }

    /// Moves the selected dead letters that hold an event to the retry
    /// table (delete and insert in one transaction per batch); returns how
    /// many.
    pub(crate) async fn replay_selection(&self, selection: &DeadLetterSelection) -> Result<u64> {
        let ids = match self.selected_letters(selection, true).await? {
            Some(ids) => ids,
            None => return Ok(0),
        };
        let mut moved = 0;
        for batch in ids.chunks(BATCH) {
            let done = self.backend.replay_dead_ids(batch).await?;
            if done > 0 {
                self.retries_queued();
            }
            moved += done;
        }
        Ok(moved)
    }

    /// Deletes the selected dead letters; returns how many.
    pub(crate) async fn purge_selection(&self, selection: &DeadLetterSelection) -> Result<u64> {
        let Some(ids) = self.selected_letters(selection, false).await? else {
            return self.backend.purge_dead(None).await;
        };
        let mut deleted = 0;
        for batch in ids.chunks(BATCH) {
            deleted += self.backend.purge_dead(Some(batch)).await?;
        }
        Ok(deleted)
    }

    /// The ids of the selected dead letters (only those holding an event
    /// with `replayable`); `None` for every letter of the group.
    async fn selected_letters(
        &self,
        selection: &DeadLetterSelection,
        replayable: bool,
    ) -> Result<Option<Vec<i64>>> {
        match selection {
            DeadLetterSelection::Ids(ids) => {
                // An id that is not a number names no letter of this store.
                let mut chosen: Vec<i64> = ids.iter().filter_map(|id| id.parse().ok()).collect();
                chosen.sort_unstable();
                chosen.dedup();
                if replayable {
                    chosen = self.holding_events(&chosen).await?;
                }
                Ok(Some(chosen))
            }
            DeadLetterSelection::Matching(filter) if filter.is_empty() && !replayable => Ok(None),
            DeadLetterSelection::Matching(filter) => {
                let mut chosen = Vec::new();
                let mut query = Query::oldest(Query::MAX_LIMIT).filter(filter.clone());
                loop {
                    let page = self.dead_letter_records(&query).await?;
                    chosen.extend(
                        page.items
                            .iter()
                            .filter(|letter| !replayable || letter.event.is_some())
                            .filter_map(|letter| letter.id.parse::<i64>().ok()),
                    );
                    match page.next {
                        Some(next) => query.cursor = Some(next),
                        None => break,
                    }
                }
                Ok(Some(chosen))
            }
            #[allow(unreachable_patterns)]
            _ => Err(Error::InvalidConfig(
                "a dead-letter selection this version does not know".into(),
            )),
        }
    }

    /// The letters among `ids` (sorted, distinct) that hold an event: one
    /// statement per run of ids spanning fewer than [`CHUNK`] row ids,
    /// reading at most that many rows, instead of one per id.
    async fn holding_events(&self, ids: &[i64]) -> Result<Vec<i64>> {
        let mut holding = Vec::with_capacity(ids.len());
        let mut rest = ids;
        while let Some(&first) = rest.first() {
            let span = rest
                .iter()
                .take_while(|&&id| id.saturating_sub(first) < CHUNK as i64)
                .count();
            let (run, tail) = rest.split_at(span);
            rest = tail;
            let (Some(before), Some(&last)) = (first.checked_sub(1), run.last()) else {
                continue;
            };
            let rows = self
                .backend
                .dead_letters(&Scan {
                    cursor: Some(before),
                    limit: usize::try_from(last - first + 1).unwrap_or(CHUNK),
                    ..Scan::default()
                })
                .await?;
            holding.extend(
                rows.iter()
                    .filter(|letter| run.binary_search(&letter.id).is_ok())
                    .filter(|letter| letter.event().is_some())
                    .map(|letter| letter.id),
            );
        }
        Ok(holding)
    }

    /// Delivers the newest stored event with this id to the group again,
    /// through the retry table: from the log, else from its dead letters
    /// (which stay). Returns whether one was found.
    pub(crate) async fn replay_event(&self, event_id: &str) -> Result<bool> {
        crate::topic::no_nul("the event id", event_id)?;
        let filter = Filter::default().event_id(event_id);
        let logged = newest(
            &filter,
            |query| async move { self.event_records(&query).await },
        )
        .await?;
        if let Some(record) = logged
            && let Ok(id) = record.id.parse::<i64>()
            && self.backend.retry_event(id).await? > 0
        {
            self.retries_queued();
            return Ok(true);
        }
        // Not in the log (or pruned meanwhile): a dead letter holding it.
        let letter = newest(&filter, |query| async move {
            self.dead_letter_records(&query).await
        })
        .await?;
        if let Some(letter) = letter
            && let Ok(id) = letter.id.parse::<i64>()
            && self.backend.retry_dead_copy(id).await? > 0
        {
            self.retries_queued();
            return Ok(true);
        }
        Ok(false)
    }
}

/// A row of the log as a record; one that is not an event is shown lossily
/// (see [`RawEvent::parse_lossy`]).
fn event_record(filter: &Filter, row: Row<RawEvent>) -> Option<Record<StoredEvent>> {
    let event = row.item.parse_lossy();
    let at = row.at_us.map(from_us);
    filter.matches_event(&event, at).then(|| Record {
        id: row.id.to_string(),
        at,
        item: event,
    })
}

fn invalid_cursor(cursor: &str) -> Error {
    Error::InvalidCursor(cursor.to_owned())
}

/// `<lease id>`, or `r<row id>` for a retry row.
fn pending_id(row: &PendingRow) -> String {
    if row.retry {
        format!("r{}", row.id)
    } else {
        row.id.to_string()
    }
}

/// `(0, lease id)` or `(1, retry row id)`.
fn parse_pending_id(text: &str) -> Option<(i64, i64)> {
    match text.strip_prefix('r') {
        Some(id) => Some((1, id.parse().ok()?)),
        None => Some((0, text.parse().ok()?)),
    }
}

/// Reads a listing from `query`: rows after (or, newest first, before) the
/// cursor, `select` keeping and converting those the filter selects, until
/// `query.limit` are kept or `query.scan_budget()` rows were read; the next
/// cursor is the last row read when more follow.
async fn scan_listing<T, U, F, Fut>(
    query: &Query,
    mut read: F,
    id_of: fn(&T) -> i64,
    mut select: impl FnMut(T) -> Option<U>,
) -> Result<Page<U>>
where
    F: FnMut(Scan) -> Fut,
    Fut: Future<Output = Result<Vec<T>>>,
{
    let cursor = query
        .cursor
        .as_deref()
        .map(|cursor| cursor.parse::<i64>().map_err(|_| invalid_cursor(cursor)))
        .transpose()?;
    let limit = query.limit.clamp(1, Query::MAX_LIMIT);
    let budget = query.scan_budget().max(limit);
    let chunk = if query.filter.is_empty() {
        limit
    } else {
        limit.max(CHUNK)
    };
    let mut scan = Scan {
        cursor,
        newest_first: query.newest_first,
        event_id: query.filter.event_id.clone(),
        since_us: query.filter.since.map(|time| to_us(time, false)),
        until_us: query.filter.until.map(|time| to_us(time, true)),
        limit: 0,
    };
    let mut items = Vec::new();
    let mut scanned = 0;
    loop {
        let want = chunk.min(budget - scanned);
        scan.limit = want + 1;
        let mut rows = read(scan.clone()).await?;
        let more = rows.len() > want;
        rows.truncate(want);
        let count = rows.len();
        for (index, row) in rows.into_iter().enumerate() {
            scanned += 1;
            let id = id_of(&row);
            scan.cursor = Some(id);
            if let Some(item) = select(row) {
                items.push(item);
            }
            if items.len() >= limit || scanned >= budget {
                let follows = index + 1 < count || more;
                return Ok(Page {
                    items,
                    next: follows.then(|| id.to_string()),
                });
            }
        }
        if !more {
            return Ok(Page { items, next: None });
        }
    }
}

/// The newest record a filtered listing holds, reading at most
/// [`soiree::inspect::LOOKUP_SCAN_LIMIT`] rows.
async fn newest<T, F, Fut>(filter: &Filter, mut read: F) -> Result<Option<T>>
where
    F: FnMut(Query) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let mut query = Query::newest(1).filter(filter.clone());
    let mut scanned = 0;
    while scanned < soiree::inspect::LOOKUP_SCAN_LIMIT {
        let page = read(query.clone()).await?;
        if let Some(item) = page.items.into_iter().next() {
            return Ok(Some(item));
        }
        scanned += query.scan_budget();
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    Ok(None)
}

/// Inspection and repair for the `soiree` CLI and dashboard. Listings
/// page by row id; pending deliveries are the group's live leases
/// (`<lease id>`, covering a range of the log) and its claimed retry
/// rows (`r<id>`); `stats().in_flight` counts the events they cover
/// (less those this process acknowledged) and `stats().consumers`
/// the distinct consumers holding them or with a live heartbeat
/// (recorded every third of their lease timeout while they consume,
/// live for one lease timeout); `stats().emitted` is the
/// last id the log handed out, and `stats()` counts rows exactly
/// (on a large PostgreSQL log, a scan of it). A delivery's idle time
/// counts from when its lease was taken or last extended (its expiry
/// less this store's lease timeout). Replays go through the group's
/// retry table: only this group gets the event again, with its id.
#[soiree::async_trait]
impl<DB: crate::Driver> soiree::Inspect for crate::SqlStore<DB> {
    fn info(&self) -> soiree::StoreInfo {
        soiree::StoreInfo::new(DB::KIND, self.location(), Some(self.group().to_owned()))
    }

    async fn stats(&self) -> soiree::Result<soiree::StoreStats> {
        Ok(self.core().inspect_stats().await?)
    }

    async fn events(
        &self,
        query: &soiree::Query,
    ) -> soiree::Result<soiree::Page<soiree::Record<soiree::StoredEvent>>> {
        Ok(self.core().event_records(query).await?)
    }

    async fn results(
        &self,
        query: &soiree::Query,
    ) -> soiree::Result<soiree::Page<soiree::Record<soiree::StoredResult>>> {
        Ok(self.core().result_records(query).await?)
    }

    async fn pending(
        &self,
        query: &soiree::Query,
    ) -> soiree::Result<soiree::Page<soiree::PendingDelivery>> {
        Ok(self.core().pending_deliveries(query).await?)
    }

    async fn consumers(&self) -> soiree::Result<Vec<soiree::ConsumerInfo>> {
        Ok(self.core().consumer_infos().await?)
    }

    async fn dead_letters(
        &self,
        query: &soiree::Query,
    ) -> soiree::Result<soiree::Page<soiree::DeadLetter>> {
        Ok(self.core().dead_letter_records(query).await?)
    }

    async fn topic_counts(&self, window: usize) -> soiree::Result<soiree::inspect::TopicCounts> {
        Ok(self.core().topic_counts(window).await?)
    }

    async fn scheduled(
        &self,
        query: &soiree::Query,
    ) -> soiree::Result<soiree::Page<soiree::ScheduledEvent>> {
        Ok(self.core().scheduled_records(query).await?)
    }

    async fn leader_leases(&self, limit: usize) -> soiree::Result<Vec<soiree::LeaseInfo>> {
        Ok(self
            .core()
            .lease_infos(limit.clamp(1, soiree::Query::MAX_LIMIT))
            .await?)
    }

    async fn limit_slots(&self, limit: usize) -> soiree::Result<Vec<soiree::LimitSlot>> {
        Ok(self
            .core()
            .slot_infos(limit.clamp(1, soiree::Query::MAX_LIMIT))
            .await?)
    }

    async fn dead_letter(&self, id: &str) -> soiree::Result<Option<soiree::DeadLetter>> {
        Ok(self.core().dead_letter_by_id(id).await?)
    }

    async fn replay_dead_letters(
        &self,
        selection: &soiree::DeadLetterSelection,
    ) -> soiree::Result<u64> {
        let core = self.core();
        Ok(core
            .privileged(crate::privileges::REPLAY, core.replay_selection(selection))
            .await?)
    }

    async fn purge_dead_letters(
        &self,
        selection: &soiree::DeadLetterSelection,
    ) -> soiree::Result<u64> {
        let core = self.core();
        Ok(core
            .privileged(crate::privileges::PURGE, core.purge_selection(selection))
            .await?)
    }

    async fn replay(&self, event_id: &str) -> soiree::Result<()> {
        let core = self.core();
        if core
            .privileged(crate::privileges::REPLAY, core.replay_event(event_id))
            .await?
        {
            Ok(())
        } else {
            Err(soiree::Error::NotFound {
                what: "event",
                id: event_id.to_owned(),
            })
        }
    }
}
