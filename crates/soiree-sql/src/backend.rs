//! What the shared queue logic needs from a database: the SQL of one backend.

use async_trait::async_trait;
use soiree::{StoredEvent, StoredResult};

use crate::Result;

/// A position in the log: `(tx, id)` on PostgreSQL (the writing
/// transaction's id, then the row id), `(0, id)` on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Pos {
    pub(crate) tx: i64,
    pub(crate) id: i64,
}

/// A claimed range of the log, `lo..=hi`, held under a fencing token.
#[derive(Debug, Clone)]
pub(crate) struct LeaseRow {
    pub(crate) id: i64,
    pub(crate) token: i64,
    pub(crate) lo: Pos,
    pub(crate) hi: Pos,
    pub(crate) events: i64,
    pub(crate) deliveries: i32,
}

/// One row of the log as stored, not yet parsed.
#[derive(Debug, Clone)]
pub(crate) struct RawEvent {
    pub(crate) pos: Pos,
    pub(crate) topic: String,
    pub(crate) payload: Option<String>,
    pub(crate) properties: Option<String>,
}

impl RawEvent {
    /// Parses the row into an event, or says why it is not one.
    pub(crate) fn parse(&self) -> std::result::Result<StoredEvent, String> {
        if self.topic.trim().is_empty() {
            return Err("parse error: the event has an empty topic".to_owned());
        }
        let payload = match &self.payload {
            None => serde_json::Value::Null,
            Some(text) => {
                serde_json::from_str(text).map_err(|err| format!("parse error: payload: {err}"))?
            }
        };
        let properties = match &self.properties {
            None => serde_json::Map::new(),
            Some(text) => serde_json::from_str(text)
                .map_err(|err| format!("parse error: properties: {err}"))?,
        };
        Ok(StoredEvent {
            topic: self.topic.clone(),
            payload,
            properties,
        })
    }
}

/// An event ready to be appended: the JSON texts and the columns derived
/// from them.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub(crate) topic: String,
    pub(crate) event_id: Option<String>,
    pub(crate) payload: String,
    pub(crate) properties: String,
    pub(crate) key: Option<String>,
}

impl NewEvent {
    pub(crate) fn from_stored(event: &StoredEvent) -> Result<Self> {
        crate::topic::no_nul("the topic", &event.topic)?;
        let event_id = event.id().map(str::to_owned);
        if let Some(id) = &event_id {
            crate::topic::no_nul("the event id", id)?;
        }
        let key = event
            .properties
            .get(crate::PROPERTY_KEY)
            .and_then(|key| key.as_str())
            .map(str::to_owned);
        if let Some(key) = &key {
            crate::topic::no_nul("the key", key)?;
        }
        Ok(Self {
            topic: event.topic.clone(),
            event_id,
            payload: serde_json::to_string(&event.payload)?,
            properties: serde_json::to_string(&event.properties)?,
            key,
        })
    }
}

/// A row that could not be delivered, on its way to the dead letters.
#[derive(Debug, Clone)]
pub(crate) struct DeadRow {
    pub(crate) event: RawEvent,
    pub(crate) error: String,
    pub(crate) deliveries: i32,
}

/// The SQL of one database; the queue logic above it is shared.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// Appends events in one statement, in order.
    async fn append(&self, events: &[NewEvent]) -> Result<()>;
    /// Saves listener results, and marks successes as done, in one statement.
    async fn save_results(&self, results: &[StoredResult]) -> Result<()>;
    /// `(event id, handler id)` of the successes recorded for these events.
    async fn succeeded(&self, event_ids: &[String]) -> Result<Vec<(String, String)>>;
    /// Claims the next unclaimed range of at most `max` committed events.
    async fn claim(&self, max: usize) -> Result<Option<LeaseRow>>;
    /// Whether events are committed past the claimed position that cannot
    /// be claimed yet (PostgreSQL: a transaction older than them is still
    /// open), so that a claim is worth trying again soon.
    async fn waiting(&self) -> Result<bool>;
    /// Takes over the oldest expired lease of the group, with a new token
    /// and one more delivery.
    async fn reclaim(&self) -> Result<Option<LeaseRow>>;
    /// Replaces a lease by one lease per event (isolating a poison event).
    async fn split(&self, lease: &LeaseRow) -> Result<Vec<LeaseRow>>;
    /// Moves a lease's events to the dead letters and drops the lease.
    async fn dead_letter_lease(&self, lease: &LeaseRow, max_deliveries: u32) -> Result<u64>;
    /// Reads the events of a lease, oldest first.
    async fn read(&self, lease: &LeaseRow) -> Result<Vec<RawEvent>>;
    /// Records rows that cannot be delivered.
    async fn dead_letter_rows(&self, rows: &[DeadRow]) -> Result<()>;
    /// Drops leases whose events are all acknowledged; returns the ids of
    /// those whose token still matched.
    async fn complete(&self, leases: &[(i64, i64)]) -> Result<Vec<i64>>;
    /// Pushes the expiry of leases forward; returns the ids of those whose
    /// token still matched.
    async fn extend(&self, leases: &[(i64, i64)]) -> Result<Vec<i64>>;
    /// Events not yet acknowledged by the group: unclaimed plus leased.
    async fn backlog(&self) -> Result<u64>;
    /// A page of the log after `after`, oldest first.
    async fn events_page(&self, after: Option<Pos>, limit: usize) -> Result<Vec<RawEvent>>;
    /// A page of the results after row `after`, oldest first.
    async fn results_page(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, StoredResult)>>;
    /// Wakes consumers in other processes (throttled by the caller).
    async fn notify_others(&self) -> Result<()>;
}
