//! Inspection (paged listings) and replay.

use std::time::Duration;

use async_trait::async_trait;
use soiree::{EventHistory, PROPERTY_EVENT_ID, Page, StoredEvent, StoredResult};

use crate::entry::{self, Entry};
use crate::keys::field;
use crate::{DeadLetter, Error, RedisStore, Result};

/// Entries read per round trip when scanning a whole stream.
const SCAN_PAGE: usize = 500;

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
    /// [`Error::Redis`] when Redis cannot be read. Entries that are not
    /// events are skipped (and logged): they are in the dead-letter stream.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn events(&self, cursor: Option<&str>, limit: usize) -> Result<Page<StoredEvent>> {
        let page = self.range(&self.inner.keys.events, cursor, limit).await?;
        map_page(page, |entry| parse(entry, field::EVENT))
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
        let page = self.range(&self.inner.keys.results, cursor, limit).await?;
        map_page(page, |entry| parse(entry, field::RESULT))
    }

    /// Entries delivered to a consumer of the group and not yet
    /// acknowledged, oldest first, paged like [`RedisStore::events`].
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when Redis cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn pending(&self, cursor: Option<&str>, limit: usize) -> Result<Page<PendingEntry>> {
        let inner = &self.inner;
        let start = cursor.map_or_else(|| "-".to_owned(), |c| format!("({c}"));
        let rows = entry::pending_rows(
            self.query(
                redis::cmd("XPENDING")
                    .arg(&inner.keys.events)
                    .arg(&inner.options.group)
                    .arg(start)
                    .arg("+")
                    .arg(limit.saturating_add(1)),
            )
            .await?,
        )?;
        let mut items: Vec<PendingEntry> = rows
            .into_iter()
            .map(|row| PendingEntry {
                entry_id: row.id,
                consumer: row.consumer,
                idle: Duration::from_millis(row.idle_ms),
                deliveries: row.deliveries,
            })
            .collect();
        let next = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(|item| item.entry_id.clone())
        });
        Ok(Page {
            items,
            next: next.flatten(),
        })
    }

    /// Dead letters, oldest first, paged like [`RedisStore::events`].
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when Redis cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn dead_letters(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<DeadLetter>> {
        let page = self.range(&self.inner.keys.dead, cursor, limit).await?;
        map_page(page, |entry| Ok(DeadLetter::from_entry(entry)))
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
                self.scan(&self.inner.keys.dead, |entry| {
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
        self.scan(&self.inner.keys.dead, |entry| {
            let letter = DeadLetter::from_entry(entry);
            if letter.event.is_some() && filter(&letter) {
                chosen.push(letter);
            }
            true
        })
        .await?;
        for letter in &chosen {
            if let Some(event) = &letter.event {
                self.append(event).await?;
                self.query::<u64>(
                    redis::cmd("XDEL")
                        .arg(&self.inner.keys.dead)
                        .arg(&letter.id),
                )
                .await?;
            }
        }
        Ok(chosen.len())
    }

    async fn find_event(&self, event_id: &str) -> Result<Option<StoredEvent>> {
        let key = &self.inner.keys.events;
        let mut end = "+".to_owned();
        loop {
            let entries = entry::entries(
                self.query(
                    redis::cmd("XREVRANGE")
                        .arg(key)
                        .arg(&end)
                        .arg("-")
                        .arg("COUNT")
                        .arg(SCAN_PAGE),
                )
                .await?,
            )?;
            for entry in &entries {
                if let Ok(event) = parse::<StoredEvent>(entry, field::EVENT)
                    && has_id(&event, event_id)
                {
                    return Ok(Some(event));
                }
            }
            match entries.last() {
                Some(last) if entries.len() == SCAN_PAGE => end = format!("({}", last.id),
                _ => return Ok(None),
            }
        }
    }

    /// Visits every entry of a stream, oldest first, until `visit` returns false.
    async fn scan(&self, key: &str, mut visit: impl FnMut(&Entry) -> bool) -> Result<()> {
        let mut cursor: Option<String> = None;
        loop {
            let page = self.range(key, cursor.as_deref(), SCAN_PAGE).await?;
            for entry in &page.items {
                if !visit(entry) {
                    return Ok(());
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// One page of raw entries of a stream.
    async fn range(&self, key: &str, cursor: Option<&str>, limit: usize) -> Result<Page<Entry>> {
        let start = cursor.map_or_else(|| "-".to_owned(), |c| format!("({c}"));
        let mut items = entry::entries(
            self.query(
                redis::cmd("XRANGE")
                    .arg(key)
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit.saturating_add(1)),
            )
            .await?,
        )?;
        let next = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(|item| item.id.clone())
        });
        Ok(Page {
            items,
            next: next.flatten(),
        })
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

/// Parses a page, skipping entries that do not parse: a malformed event is
/// in the dead-letter stream already, and one bad entry must not hide the
/// rest of the history.
fn map_page<T>(page: Page<Entry>, f: impl Fn(&Entry) -> Result<T>) -> Result<Page<T>> {
    let items = page
        .items
        .iter()
        .filter_map(|entry| match f(entry) {
            Ok(item) => Some(item),
            Err(err) => {
                tracing::warn!(%err, id = %entry.id, "skipping a malformed stream entry");
                None
            }
        })
        .collect();
    Ok(Page {
        items,
        next: page.next,
    })
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
