//! Inspection and repair: one trait every store implements, so that the
//! `soiree` CLI and the dashboard work the same on any of them.
//!
//! An operator asks a store what it holds ([`Inspect::stats`],
//! [`Inspect::events`], [`Inspect::results`]), what is stuck
//! ([`Inspect::pending`], [`Inspect::consumers`], [`Inspect::dead_letters`])
//! and why ([`Inspect::event`]: an event with the outcome of every listener
//! attempt), then repairs: [`Inspect::replay`] an event,
//! [`Inspect::replay_dead_letters`], [`Inspect::purge_dead_letters`]. A live
//! [`Inspect::tail`] follows new events.
//!
//! Listings are paged by [`Query`]: records carry the store's id, which is
//! the cursor of the next page, and are narrowed by a [`Filter`] (topic
//! pattern, event id, time range).

mod query;
mod record;
mod tail;

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub use query::{DeadLetterSelection, Filter, Query, event_id_text};
pub use record::{
    ConsumerInfo, DeadLetter, EventDetail, LeaseInfo, LimitSlot, PendingDelivery, Rates, Record,
    RecordPage, ScheduledEvent, StoreInfo, StoreStats, TopicCounts,
};

use super::{Page, StoredResult};
use crate::{Result, StoredEvent};

/// Events read per call by the default [`Inspect::topic_counts`]: the most
/// payloads it holds at once.
pub const TOPIC_COUNT_PAGE: usize = 100;

/// How many records [`Inspect::event`] and [`Inspect::dead_letter`] read at
/// most when a store has no index to look them up by.
pub const LOOKUP_SCAN_LIMIT: usize = 100_000;

/// Reads what a store holds and repairs what is stuck.
///
/// Implemented by [`MemoryStore`](crate::MemoryStore) and the durable stores
/// (`soiree-redis`, `soiree-sql`); the `soiree` CLI and the dashboard use only
/// this trait, through `Arc<dyn Inspect>`.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use soiree::{EventBus, Inspect, MemoryStore, Query};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
/// let store = Arc::new(MemoryStore::queue());
/// let bus = EventBus::builder().shared_store(store.clone()).build()?;
/// bus.on("invoice.sent", |_ctx| async { Err("smtp down".into()) })?;
/// bus.start()?;
/// bus.emit("invoice.sent", 42).persisted().await?;
/// bus.wait_for_idle().await;
///
/// // What the CLI and the dashboard hold.
/// let admin: Arc<dyn Inspect> = store.clone();
/// let stats = admin.stats().await?;
/// assert_eq!((stats.events, stats.dead_letters), (1, 1));
/// let letters = admin.dead_letters(&Query::oldest(10)).await?;
/// assert!(letters.items[0].error.contains("smtp down"));
///
/// // Fixed the mail server: run it again.
/// let replayed = admin
///     .replay_dead_letters(&soiree::DeadLetterSelection::Ids(vec![letters.items[0].id.clone()]))
///     .await?;
/// assert_eq!(replayed, 1);
/// bus.close().await
/// # }
/// ```
#[async_trait]
pub trait Inspect: Send + Sync + std::fmt::Debug {
    /// What the store is and where, without credentials.
    fn info(&self) -> StoreInfo;

    /// A snapshot of the store's counts.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn stats(&self) -> Result<StoreStats>;

    /// A page of stored events.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store cannot be read or the cursor is not
    /// one of its ids. Entries that are not events are left out (they are
    /// dead letters).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn events(&self, query: &Query) -> Result<Page<Record<StoredEvent>>>;

    /// A page of stored listener results.
    ///
    /// # Errors
    ///
    /// As for [`events`](Self::events).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn results(&self, query: &Query) -> Result<Page<Record<StoredResult>>>;

    /// The newest stored copy of the event with this id, with its results
    /// and dead letters; `None` when the store holds no such event.
    ///
    /// The default scans the newest [`LOOKUP_SCAN_LIMIT`] records of each
    /// listing; stores with an index override it.
    ///
    /// # Errors
    ///
    /// As for [`events`](Self::events).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn event(&self, event_id: &str) -> Result<Option<EventDetail>> {
        let filter = Filter::default().event_id(event_id);
        let Some(event) =
            newest_matching(&filter, 1, |query| async move { self.events(&query).await })
                .await?
                .pop()
        else {
            return Ok(None);
        };
        let mut results = newest_matching(&filter, usize::MAX, |query| async move {
            self.results(&query).await
        })
        .await?;
        results.reverse();
        let mut dead_letters = newest_matching(&filter, usize::MAX, |query| async move {
            self.dead_letters(&query).await
        })
        .await?;
        dead_letters.reverse();
        Ok(Some(EventDetail::new(event, results, dead_letters)))
    }

    /// How many of the newest `window` stored events each topic has.
    ///
    /// The default reads the events [`TOPIC_COUNT_PAGE`] at a time (their
    /// payloads too); stores override it with a cheaper count (SQL: one
    /// `GROUP BY`; memory: no copies).
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn topic_counts(&self, window: usize) -> Result<TopicCounts> {
        let mut counts = std::collections::HashMap::<String, u64>::new();
        let mut query = Query::newest(TOPIC_COUNT_PAGE);
        let mut scanned = 0;
        while scanned < window {
            query.limit = (window - scanned).min(TOPIC_COUNT_PAGE);
            let page = self.events(&query).await?;
            scanned += page.items.len();
            for record in page.items {
                *counts.entry(record.item.topic).or_default() += 1;
            }
            match page.next {
                Some(next) => query.cursor = Some(next),
                None => break,
            }
        }
        Ok(TopicCounts::new(scanned as u64, counts))
    }

    /// Deliveries taken by consumers and not yet acknowledged, oldest
    /// first; the query's cursor and limit apply, its filter does not.
    ///
    /// # Errors
    ///
    /// As for [`events`](Self::events).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn pending(&self, query: &Query) -> Result<Page<PendingDelivery>>;

    /// The consumers of the store's group.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn consumers(&self) -> Result<Vec<ConsumerInfo>>;

    /// Delayed events the store holds until their due time, soonest first;
    /// the query's cursor and limit apply, its filter too (on the event).
    ///
    /// The default answers [`Error::Unsupported`](crate::Error::Unsupported):
    /// a store that [schedules](crate::EventQueue::schedules) overrides it
    /// (the [`MemoryStore`](crate::MemoryStore)'s queue does).
    ///
    /// # Errors
    ///
    /// As for [`events`](Self::events), and
    /// [`Error::Unsupported`](crate::Error::Unsupported) from the default.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn scheduled(&self, query: &Query) -> Result<Page<ScheduledEvent>> {
        let _ = query;
        Err(crate::Error::Unsupported(
            "listing delayed events: this store does not schedule".into(),
        ))
    }

    /// The leader leases the store holds, by name, at most `limit`
    /// ([`Query::MAX_LIMIT`] at most): who holds each, until when, and the
    /// progress its holders recorded (a periodic schedule's last tick).
    /// Lapsed and released grants are listed too, not [`held`](LeaseInfo::held).
    ///
    /// The default answers [`Error::Unsupported`](crate::Error::Unsupported):
    /// a store with [leases](crate::EventStore::leases) overrides it.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store cannot be
    /// read, and [`Error::Unsupported`](crate::Error::Unsupported) from the
    /// default.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn leader_leases(&self, limit: usize) -> Result<Vec<LeaseInfo>> {
        let _ = limit;
        Err(crate::Error::Unsupported(
            "listing leader leases: this store has none".into(),
        ))
    }

    /// The listener limit slots in use (unexpired), by key then holder, at
    /// most `limit` ([`Query::MAX_LIMIT`] at most).
    ///
    /// The default answers [`Error::Unsupported`](crate::Error::Unsupported):
    /// a store with [shared limits](crate::EventStore::limits) overrides it.
    ///
    /// # Errors
    ///
    /// As for [`leader_leases`](Self::leader_leases).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn limit_slots(&self, limit: usize) -> Result<Vec<LimitSlot>> {
        let _ = limit;
        Err(crate::Error::Unsupported(
            "listing limit slots: this store shares no listener limits".into(),
        ))
    }

    /// A page of dead letters; their ids are the cursors.
    ///
    /// # Errors
    ///
    /// As for [`events`](Self::events).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn dead_letters(&self, query: &Query) -> Result<Page<DeadLetter>>;

    /// One dead letter by its id, `None` when there is none.
    ///
    /// The default scans at most [`LOOKUP_SCAN_LIMIT`] dead letters.
    ///
    /// # Errors
    ///
    /// As for [`events`](Self::events).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>> {
        let mut query = Query::oldest(Query::MAX_LIMIT);
        let mut scanned = 0;
        while scanned < LOOKUP_SCAN_LIMIT {
            let page = self.dead_letters(&query).await?;
            scanned += page.items.len().max(1);
            if let Some(letter) = page.items.into_iter().find(|letter| letter.id == id) {
                return Ok(Some(letter));
            }
            match page.next {
                Some(next) => query.cursor = Some(next),
                None => break,
            }
        }
        Ok(None)
    }

    /// Delivers the selected dead letters to the group again, with their
    /// event ids (listeners registered with
    /// [`on_named`](crate::EventBus::on_named) that already succeeded for
    /// an event are skipped), and removes them from the dead letters once
    /// re-enqueued: a failure in between duplicates, never loses. Dead
    /// letters that hold no event cannot be replayed and stay. Returns how
    /// many were replayed.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store cannot be read or written; the
    /// letters replayed before the failure stay replayed.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled call may have replayed some letters.
    async fn replay_dead_letters(&self, selection: &DeadLetterSelection) -> Result<u64>;

    /// Deletes the selected dead letters; returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store cannot be written.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled call may have deleted some letters.
    async fn purge_dead_letters(&self, selection: &DeadLetterSelection) -> Result<u64>;

    /// Delivers the stored event with this id to the group again, with the
    /// same id (listeners that already succeeded for it are skipped). Looks
    /// among stored events, then dead letters.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) when the store holds no such event,
    /// [`Error::Store`](crate::Error::Store) when it cannot be read or written.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled call may or may not have enqueued it.
    async fn replay(&self, event_id: &str) -> Result<()>;

    /// New events as they are stored, from now on, polling every `every`
    /// (at least 10 ms). The stream ends only when dropped; a read error is
    /// yielded and polling goes on.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream stops it; nothing is changed in the store.
    fn tail(&self, filter: Filter, every: Duration) -> BoxStream<'_, Result<Record<StoredEvent>>> {
        tail::tail(self, filter, every)
    }
}

/// Reads pages newest first until `want` records are found, the listing
/// ends or [`LOOKUP_SCAN_LIMIT`] records were scanned; newest first.
async fn newest_matching<T, F, Fut>(filter: &Filter, want: usize, mut read: F) -> Result<Vec<T>>
where
    F: FnMut(Query) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>>>,
{
    let mut query = Query::newest(Query::MAX_LIMIT).filter(filter.clone());
    let mut found = Vec::new();
    let mut scanned = 0;
    while found.len() < want && scanned < LOOKUP_SCAN_LIMIT {
        let page = read(query.clone()).await?;
        scanned += query.scan_budget();
        found.extend(page.items);
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    found.truncate(want);
    Ok(found)
}
