//! Inspection (paged listings) and replay: the store's own methods, and
//! [`soiree::Inspect`] (in `trait_impl`) on the same helpers.

mod scan;
mod trait_impl;
mod views;

use std::time::Duration;

use async_trait::async_trait;
use soiree::{EventHistory, PROPERTY_EVENT_ID, Page, Query, StoredEvent, StoredResult};

use crate::entry::{self, Entry, PendingRow};
use crate::keys::field;
use crate::{DeadLetter, Error, RedisStore, Result};

pub(crate) use scan::{Range, StreamId, entry_time};

/// An entry delivered to a consumer and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingEntry {
    /// The entry's id in the events stream.
    pub entry_id: String,
    /// The consumer it was delivered to.
    pub consumer: String,
    /// Time since its last delivery.
    pub idle: Duration,
    /// How many times it was delivered.
    pub deliveries: u64,
}

impl RedisStore {
    /// Stored events, oldest first, after `cursor` (an entry id from a
    /// previous page's `next`), at most `limit`.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when Redis cannot be read, [`Error::InvalidCursor`]
    /// when `cursor` is not an entry id. An entry that is not a readable
    /// event (it is in the dead-letter stream) is listed lossily: its raw
    /// text as the payload, its event id when readable.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn events(&self, cursor: Option<&str>, limit: usize) -> Result<Page<StoredEvent>> {
        let Some(query) = page_query(cursor, limit) else {
            return Ok(empty_page());
        };
        self.scan_page(&self.inner.keys.events, &query, |entry, _| {
            event_lossy(entry)
        })
        .await
    }

    /// Stored handler results, oldest first, paged like [`RedisStore::events`].
    ///
    /// # Errors
    ///
    /// As for [`RedisStore::events`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn results(&self, cursor: Option<&str>, limit: usize) -> Result<Page<StoredResult>> {
        // Results written behind are read back too.
        self.flush_results().await;
        let Some(query) = page_query(cursor, limit) else {
            return Ok(empty_page());
        };
        self.scan_page(&self.inner.keys.results, &query, |entry, _| {
            parse_or_skip(entry, field::RESULT)
        })
        .await
    }

    /// Entries delivered to a consumer of the group and not yet
    /// acknowledged, oldest first, paged like [`RedisStore::events`].
    ///
    /// # Errors
    ///
    /// As for [`RedisStore::events`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn pending(&self, cursor: Option<&str>, limit: usize) -> Result<Page<PendingEntry>> {
        let page = self.pending_rows(cursor, limit).await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|row| PendingEntry {
                    entry_id: row.id,
                    consumer: row.consumer,
                    idle: Duration::from_millis(row.idle_ms),
                    deliveries: row.deliveries,
                })
                .collect(),
            next: page.next,
        })
    }

    /// A page of the group's pending list (XPENDING, extended form), after
    /// `cursor`.
    async fn pending_rows(&self, cursor: Option<&str>, limit: usize) -> Result<Page<PendingRow>> {
        let inner = &self.inner;
        let start = match cursor {
            None => "-".to_owned(),
            Some(cursor) => match StreamId::cursor(cursor)?.next() {
                Some(start) => start.to_string(),
                None => return Ok(empty_page()),
            },
        };
        let mut rows = entry::pending_rows(
            self.query(&redis::Cmd::xpending_count(
                &inner.keys.events,
                &inner.options.group,
                start,
                "+",
                limit.saturating_add(1),
            ))
            .await?,
        )?;
        let next = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            rows.last().map(|row| row.id.clone())
        });
        Ok(Page {
            items: rows,
            next: next.flatten(),
        })
    }

    /// Dead letters, oldest first, paged like [`RedisStore::events`].
    ///
    /// # Errors
    ///
    /// As for [`RedisStore::events`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn dead_letters(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<DeadLetter>> {
        let Some(query) = page_query(cursor, limit) else {
            return Ok(empty_page());
        };
        self.scan_page(&self.inner.keys.dead, &query, |entry, _| {
            Some(DeadLetter::from_entry(entry))
        })
        .await
    }

    /// Enqueues the stored event with this event id again, with the same
    /// id: listeners that already succeeded for it (by
    /// [`on_named`](soiree::EventBus::on_named) id) are skipped. Looks in
    /// the events stream, newest first, then in the dead letters. The id
    /// property may be a JSON string or number (`"4242"` finds `4242`).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when neither holds the event, [`Error::Redis`]
    /// when Redis cannot be read or written.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled call may or may not have enqueued the event.
    pub async fn replay(&self, event_id: &str) -> Result<()> {
        let event = match self.find_event(event_id).await? {
            Some(event) => event,
            None => {
                let mut found = None;
                self.visit(&self.inner.keys.dead, Range::ALL, false, |entry| {
                    let letter = DeadLetter::from_entry(entry);
                    match letter.event {
                        Some(event) if has_id(&event, event_id) => {
                            found = Some(event);
                            false
                        }
                        _ => true,
                    }
                })
                .await?;
                found.ok_or_else(|| Error::NotFound(event_id.to_owned()))?
            }
        };
        self.append(&event).await?;
        Ok(())
    }

    /// Enqueues again every dead letter holding an event for which `filter`
    /// returns true, with its event id, and removes it from the dead-letter
    /// stream (after the append: a failure in between duplicates, never
    /// loses). Returns how many were replayed. Malformed entries cannot be
    /// replayed and stay.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when Redis cannot be read or written; the letters
    /// replayed before the failure are replayed and removed.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled call may have replayed some letters.
    pub async fn replay_dead_letters(
        &self,
        mut filter: impl FnMut(&DeadLetter) -> bool + Send,
    ) -> Result<usize> {
        let mut chosen = Vec::new();
        self.visit(&self.inner.keys.dead, Range::ALL, false, |entry| {
            let letter = DeadLetter::from_entry(entry);
            if letter.event.is_some() && filter(&letter) {
                chosen.push(letter);
            }
            true
        })
        .await?;
        self.replay_letters(chosen).await
    }

    /// Appends the events of these dead letters to the events stream and
    /// then deletes the letters, a batch at a time (a failure in between
    /// duplicates, never loses). Letters without an event are left alone.
    /// A letter whose append fails stays, and does not keep the others
    /// from being replayed; the first such failure is returned after the
    /// batch. Returns how many were replayed.
    pub(crate) async fn replay_letters(&self, letters: Vec<DeadLetter>) -> Result<usize> {
        const BATCH: usize = 100;
        let (ids, events): (Vec<String>, Vec<StoredEvent>) = letters
            .into_iter()
            .filter_map(|letter| Some((letter.id, letter.event?)))
            .unzip();
        let mut replayed = 0;
        for (ids, events) in ids.chunks(BATCH).zip(events.chunks(BATCH)) {
            let mut first_failure = None;
            let mut appended = Vec::with_capacity(ids.len());
            for (id, outcome) in ids.iter().zip(self.append_each(events).await) {
                match outcome {
                    Ok(()) => appended.push(id.as_str()),
                    Err(err) => {
                        tracing::warn!(%err, letter = %id, "replaying a dead letter failed; it stays");
                        first_failure.get_or_insert(err);
                    }
                }
            }
            if !appended.is_empty() {
                self.query::<u64>(&redis::Cmd::xdel(&self.inner.keys.dead, &appended))
                    .await?;
                replayed += appended.len();
            }
            if let Some(err) = first_failure {
                return Err(err);
            }
        }
        Ok(replayed)
    }

    async fn find_event(&self, event_id: &str) -> Result<Option<StoredEvent>> {
        let mut found = None;
        self.visit(
            &self.inner.keys.events,
            Range::ALL,
            true,
            |entry| match parse::<StoredEvent>(entry, field::EVENT) {
                Ok(event) if has_id(&event, event_id) => {
                    found = Some(event);
                    false
                }
                _ => true,
            },
        )
        .await?;
        Ok(found)
    }
}

/// A query for the store's own pages: oldest first, unfiltered, any limit
/// (`None` for a limit of 0: an empty page).
fn page_query(cursor: Option<&str>, limit: usize) -> Option<Query> {
    let mut query = Query::oldest(limit);
    query.limit = limit;
    query.cursor = cursor.map(str::to_owned);
    (limit > 0).then_some(query)
}

fn empty_page<T>() -> Page<T> {
    Page {
        items: Vec::new(),
        next: None,
    }
}
/// Whether the event's id property is `event_id`, whatever JSON type
/// carried it: a string, or a number (`4242` matches `"4242"`; the float
/// `42.5` matches `"42.5"` and `"42.50"`).
fn has_id(event: &StoredEvent, event_id: &str) -> bool {
    match event.properties.get(PROPERTY_EVENT_ID) {
        Some(serde_json::Value::String(id)) => id == event_id,
        Some(serde_json::Value::Number(id)) => {
            // Integers compare as text (exact beyond 2^53); floats by value.
            id.to_string() == event_id
                || (id.is_f64()
                    && matches!(
                        (id.as_f64(), event_id.trim().parse::<f64>()),
                        (Some(a), Ok(b)) if a == b
                    ))
        }
        _ => false,
    }
}

fn parse<T: serde::de::DeserializeOwned>(entry: &Entry, name: &str) -> Result<T> {
    let json = entry.field(name).ok_or_else(|| {
        Error::UnexpectedReply(format!("entry {} has no {name:?} field", entry.id))
    })?;
    Ok(serde_json::from_slice(json)?)
}

/// An entry's event as a listing shows it: the event, or, when the entry
/// holds an event field that is not a readable event (the consumer
/// dead-lettered it), what can be read of it: its raw text as the payload,
/// its event id when readable, no topic. One bad entry neither fails the
/// page nor hides from it. `None` for an entry with no event field.
pub(super) fn event_lossy(entry: &Entry) -> Option<StoredEvent> {
    let json = entry.field(field::EVENT)?;
    match serde_json::from_slice(json) {
        Ok(event) => Some(event),
        Err(err) => {
            tracing::debug!(%err, id = %entry.id, "listing a malformed stream entry lossily");
            let mut properties = serde_json::Map::new();
            if let Some(id) = entry::event_id_of(json) {
                properties.insert(PROPERTY_EVENT_ID.to_owned(), id.into());
            }
            Some(StoredEvent {
                topic: String::new(),
                payload: String::from_utf8_lossy(json).into_owned().into(),
                properties,
            })
        }
    }
}

/// Parses an entry, or skips it (and logs why): a malformed event is in
/// the dead-letter stream already, and one bad entry must not hide the rest
/// of the history.
fn parse_or_skip<T: serde::de::DeserializeOwned>(entry: &Entry, name: &str) -> Option<T> {
    match parse(entry, name) {
        Ok(item) => Some(item),
        Err(err) => {
            tracing::warn!(%err, id = %entry.id, "skipping a malformed stream entry");
            None
        }
    }
}

#[async_trait]
impl EventHistory for RedisStore {
    async fn events(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> soiree::Result<Page<StoredEvent>> {
        Ok(RedisStore::events(self, cursor, limit).await?)
    }

    async fn results(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> soiree::Result<Page<StoredResult>> {
        Ok(RedisStore::results(self, cursor, limit).await?)
    }
}
