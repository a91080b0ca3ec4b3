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

/// A failed delivery of a held lease, on its way to the dead letters or the
/// retry table (only while the lease's token still matches).
#[derive(Debug, Clone)]
pub(crate) struct FailedRow {
    pub(crate) lease: i64,
    pub(crate) token: i64,
    pub(crate) pos: Pos,
    pub(crate) error: String,
    /// Milliseconds before it is due again (retry table only).
    pub(crate) delay_ms: i64,
}

/// A row of the retry table claimed for delivery, under a fencing token.
#[derive(Debug, Clone)]
pub(crate) struct RetryRow {
    pub(crate) id: i64,
    pub(crate) token: i64,
    pub(crate) deliveries: i32,
    pub(crate) event: RawEvent,
}

/// A failed delivery of a retry-table row.
#[derive(Debug, Clone)]
pub(crate) struct FailedRetry {
    pub(crate) id: i64,
    pub(crate) token: i64,
    pub(crate) error: String,
    pub(crate) delay_ms: i64,
}

/// A run of consecutive events of a lease, handed back as a lease of its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) lo: Pos,
    pub(crate) hi: Pos,
    pub(crate) events: i32,
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
    /// Copies failed events of held leases (token checked) into the dead
    /// letters, or with `retry` into the retry table; returns how many.
    async fn fail_leased(&self, rows: &[FailedRow], retry: bool) -> Result<u64>;
    /// Claims due rows of the retry table (SKIP LOCKED on PostgreSQL) with a
    /// new token, one more delivery, and `run_at` pushed a lease timeout on.
    async fn claim_retries(&self, max: usize) -> Result<Vec<RetryRow>>;
    /// Deletes handled retry rows; returns the ids whose token matched.
    async fn ack_retries(&self, rows: &[(i64, i64)]) -> Result<Vec<i64>>;
    /// Moves failed retry rows to the dead letters, or with `retry` makes
    /// them due again after their delay; returns how many.
    async fn fail_retries(&self, rows: &[FailedRetry], retry: bool) -> Result<u64>;
    /// Pushes claimed retry rows' `run_at` a lease timeout on; returns the
    /// ids whose token matched.
    async fn extend_retries(&self, rows: &[(i64, i64)]) -> Result<Vec<i64>>;
    /// Makes claimed retry rows due at once, without counting the delivery.
    async fn release_retries(&self, rows: &[(i64, i64)]) -> Result<()>;
    /// Records runs of a held lease's events as expired leases of their own
    /// (one delivery less, so that the next claim does not count), while
    /// the lease's token matches; returns whether it did.
    async fn hand_back(&self, lease: (i64, i64), runs: &[Run]) -> Result<bool>;
    /// A page of the group's dead letters after id `after`, oldest first.
    async fn dead_letters(&self, after: i64, limit: usize) -> Result<Vec<crate::DeadLetter>>;
    /// Moves the group's dead letters chosen by `filter` to the retry
    /// table, due at once; returns how many.
    async fn replay_dead(&self, filter: &crate::DeadLetterFilter) -> Result<u64>;
    /// Deletes at most `batch` events that every group's cursor passed, no
    /// lease covers and that are older than `older_than_ms`, oldest first;
    /// returns how many.
    async fn prune(&self, older_than_ms: i64, batch: usize) -> Result<u64>;
    /// Removes whole stretches of the log at once under the same rules as
    /// [`prune`](Self::prune), before the batches (PostgreSQL: truncates and
    /// drops partitions, see `postgres::partitions`); returns how many
    /// events went. None by default.
    async fn prune_partitions(&self, older_than_ms: i64) -> Result<u64> {
        let _ = older_than_ms;
        Ok(0)
    }
    /// The age in milliseconds of the oldest event the group has not
    /// acknowledged (unclaimed or leased), if any.
    async fn oldest_unconsumed_ms(&self) -> Result<Option<i64>>;
    /// How many transactions the claim horizon (the oldest running
    /// transaction) lags behind the next transaction id; `None` where there
    /// is no such horizon (SQLite).
    async fn xmin_lag(&self) -> Result<Option<i64>>;
    /// Wakes consumers in other processes (throttled by the caller).
    async fn notify_others(&self) -> Result<()>;
}
