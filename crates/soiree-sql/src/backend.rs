//! What the shared queue logic needs from a database: the SQL of one backend.

use async_trait::async_trait;
use soiree::{StoredEvent, StoredResult};

use crate::{Error, Result};

/// A position in the log: `(tx, id)` on PostgreSQL (the writing
/// transaction's id, then the row id), `(0, id)` on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub(crate) tx: i64,
    pub(crate) id: i64,
}

/// A claimed range of the log, `lo..=hi`, held under a fencing token.
#[derive(Debug, Clone)]
pub struct LeaseRow {
    pub(crate) id: i64,
    pub(crate) token: i64,
    pub(crate) lo: Pos,
    pub(crate) hi: Pos,
    pub(crate) events: i64,
    pub(crate) deliveries: i32,
}

/// What a claim of the log found.
#[derive(Debug)]
pub enum Claim {
    /// A lease; with its rows and their listeners' successes when the
    /// claim read them as well (else they are read after it).
    Lease(LeaseRow, Option<ClaimedRows>),
    /// Nothing to claim; whether events wait behind an open transaction
    /// (see [`Backend::waiting`]), when the claim found out.
    Empty(Option<bool>),
}

/// The rows of a lease read by its claim, oldest first, each with the
/// log's event id column and the handler ids recorded as succeeded for
/// that id in the group.
pub(crate) type ClaimedRows = Vec<(RawEvent, Option<String>, Vec<String>)>;

/// One row of the log as stored, not yet parsed.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub(crate) pos: Pos,
    pub(crate) topic: String,
    pub(crate) payload: Option<String>,
    pub(crate) properties: Option<String>,
    /// The ordering key column (`soiree.key` when appended).
    pub(crate) key: Option<String>,
    /// Why the row could not be read as stored (its texts above are then
    /// lossy): it is not an event.
    pub(crate) flaw: Option<String>,
}

impl RawEvent {
    /// Parses the row into an event, or says why it is not one.
    pub(crate) fn parse(&self) -> std::result::Result<StoredEvent, String> {
        if let Some(flaw) = &self.flaw {
            return Err(flaw.clone());
        }
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

impl RawEvent {
    /// The row as an event for a listing, even when it is not one: its
    /// topic as stored, its payload as parsed or else as a JSON string of
    /// the stored text, its properties as parsed or else empty. Lossy: for
    /// showing a row, never for delivering it.
    pub(crate) fn parse_lossy(&self) -> StoredEvent {
        if let Ok(event) = self.parse() {
            return event;
        }
        let payload = self
            .payload
            .as_deref()
            .map(|text| {
                serde_json::from_str(text)
                    .unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
            })
            .unwrap_or_default();
        let properties = self
            .properties
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        StoredEvent {
            topic: self.topic.clone(),
            payload,
            properties,
        }
    }
}

/// An event ready to be appended: the JSON texts and the columns derived
/// from them.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub(crate) topic: String,
    pub(crate) event_id: Option<String>,
    pub(crate) payload: String,
    pub(crate) properties: String,
    pub(crate) key: Option<String>,
}

impl NewEvent {
    /// The row of an event, after every check of [`soiree::limits`] (the
    /// JSON is written once, with its depth and size checked on the way).
    pub(crate) fn from_stored(event: &StoredEvent) -> Result<Self> {
        soiree::limits::check_envelope(event).map_err(Error::Event)?;
        let event_id = event.id().map(str::to_owned);
        let key = event
            .properties
            .get(crate::PROPERTY_KEY)
            .and_then(|key| key.as_str())
            .map(str::to_owned);
        if let Some(key) = &key {
            crate::topic::no_nul("the key", key)?;
            // Indexed as event ids are.
            if key.len() > soiree::limits::MAX_EVENT_ID_LEN {
                return Err(Error::Event(soiree::Error::LimitExceeded {
                    what: "ordering key bytes",
                    limit: soiree::limits::MAX_EVENT_ID_LEN,
                    actual: key.len(),
                }));
            }
        }
        Ok(Self {
            topic: event.topic.clone(),
            event_id,
            payload: soiree::limits::encode_payload(&event.payload).map_err(Error::Event)?,
            properties: soiree::limits::encode_properties(&event.properties)
                .map_err(Error::Event)?,
            key,
        })
    }
}

/// A row that could not be delivered, on its way to the dead letters.
#[derive(Debug, Clone)]
pub struct DeadRow {
    pub(crate) event: RawEvent,
    pub(crate) error: String,
    pub(crate) deliveries: i32,
}

/// A failed delivery of a held lease, on its way to the dead letters or the
/// retry table (only while the lease's token still matches).
#[derive(Debug, Clone)]
pub struct FailedRow {
    pub(crate) lease: i64,
    pub(crate) token: i64,
    pub(crate) pos: Pos,
    pub(crate) error: String,
    /// Milliseconds before it is due again (retry table only).
    pub(crate) delay_ms: i64,
    /// Deliveries taken off its count (retry table only): 1 for a
    /// deferral, whose delivery does not count; 0 for a failure.
    pub(crate) uncounted: i32,
}

/// A row of the retry table claimed for delivery, under a fencing token.
#[derive(Debug, Clone)]
pub struct RetryRow {
    pub(crate) id: i64,
    pub(crate) token: i64,
    pub(crate) deliveries: i32,
    pub(crate) event: RawEvent,
}

/// A failed delivery of a retry-table row.
#[derive(Debug, Clone)]
pub struct FailedRetry {
    pub(crate) id: i64,
    pub(crate) token: i64,
    pub(crate) error: String,
    pub(crate) delay_ms: i64,
    /// As [`FailedRow::uncounted`] (made due again only).
    pub(crate) uncounted: i32,
}

/// A run of consecutive events of a lease, handed back as a lease of its own.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub(crate) lo: Pos,
    pub(crate) hi: Pos,
    pub(crate) events: i32,
}

/// Which rows of a listing to read: after (or, newest first, before) a row
/// id, narrowed by what SQL tests cheaply (the caller checks every row again
/// with [`soiree::Filter`], which also matches topic patterns).
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub(crate) cursor: Option<i64>,
    pub(crate) newest_first: bool,
    pub(crate) event_id: Option<String>,
    /// Stored at or after this many microseconds since the epoch.
    pub(crate) since_us: Option<i64>,
    /// Stored before this many microseconds since the epoch.
    pub(crate) until_us: Option<i64>,
    /// Rows at most.
    pub(crate) limit: usize,
}

/// The SQL of one listing of one database, for [`Scan::sql`].
#[derive(Debug, Clone, Copy)]
pub struct Listing {
    /// The selected columns, the row id first; `AT_US` stands for `at_us`.
    pub(crate) columns: &'static str,
    pub(crate) table: &'static str,
    /// The expression of a row's time in microseconds since the epoch.
    pub(crate) at_us: &'static str,
    /// Rows belong to a consumer group (`group_name`).
    pub(crate) grouped: bool,
    /// The `event_id` column is NULL for events whose id is not a JSON
    /// string: such rows pass the SQL test, and the caller checks them.
    pub(crate) event_id_nullable: bool,
}

/// A parameter of a statement run through [`Backend::fetch`] or
/// [`Backend::execute`] (a listing's, a delayed event's).
#[derive(Debug, Clone)]
pub enum Param {
    Int(i64),
    /// An integer or NULL.
    MaybeInt(Option<i64>),
    Text(String),
    /// A text or NULL.
    MaybeText(Option<String>),
}

/// The statements whose logic is written once over both databases (delayed
/// events, unique keys and shared limits: `crate::scheduled`,
/// `crate::unique`, `crate::limits`), as one database spells them. Each
/// takes the same parameters, in the same order, on both; the store's
/// tables unqualified, as for [`Backend::execute`].
#[derive(Debug)]
pub struct CommonSql {
    /// Stores a delayed event: topic, event id, payload, properties, key,
    /// due time (Unix ms).
    pub(crate) schedule: &'static str,
    /// The earliest due time of the delayed events (no row when none).
    pub(crate) next_due: &'static str,
    /// Claims a unique key (key, event id, expiry, now), replacing an
    /// expired claim; returns the event id when it did.
    pub(crate) claim_unique: &'static str,
    /// The event id holding a unique key (key).
    pub(crate) unique_holder: &'static str,
    /// Deletes at most `$2` unique keys expired at `$1`.
    pub(crate) prune_unique: &'static str,
    /// Holds a limit key (scope, key) until the transaction ends, where
    /// the transaction alone does not serialize takers (PostgreSQL).
    pub(crate) lock_limit_key: Option<&'static str>,
    /// Frees a key's slots (key) expired at `$2`.
    pub(crate) free_slots: &'static str,
    /// Takes a slot (key, holder, expiry) while the key has fewer than
    /// `$4` slots.
    pub(crate) take_slot: &'static str,
    /// Admits a run of a rate (key, now, interval) when its next start is
    /// not after now; returns the new next start when it did.
    pub(crate) take_rate: &'static str,
    /// A rate's next start (key).
    pub(crate) rate_next: &'static str,
    /// Deletes at most `$2` slots expired at `$1`…
    pub(crate) prune_slots: &'static str,
    /// …and rates whose next start is not after `$1`.
    pub(crate) prune_rates: &'static str,
}

/// Binds `params` to `query`, in order.
pub(crate) fn bind_params<'q, DB: sqlx::Database>(
    mut query: sqlx::query::Query<'q, DB, DB::Arguments>,
    params: Vec<Param>,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    Option<i64>: for<'t> sqlx::Encode<'t, DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    Option<String>: for<'t> sqlx::Encode<'t, DB>,
{
    for param in params {
        query = match param {
            Param::Int(value) => query.bind(value),
            Param::MaybeInt(value) => query.bind(value),
            Param::Text(value) => query.bind(value),
            Param::MaybeText(value) => query.bind(value),
        };
    }
    query
}

impl Scan {
    /// The statement of this scan over `listing` and its parameters, in
    /// order; `placeholder(n)` spells the n-th parameter (from 1).
    pub(crate) fn sql(
        &self,
        listing: &Listing,
        group: &str,
        placeholder: fn(usize) -> String,
    ) -> (String, Vec<Param>) {
        let mut params = Vec::new();
        let mut conditions: Vec<String> = Vec::new();
        let mut bind = |param: Param| {
            params.push(param);
            placeholder(params.len())
        };
        if listing.grouped {
            conditions.push(format!(
                "group_name = {}",
                bind(Param::Text(group.to_owned()))
            ));
        }
        if let Some(cursor) = self.cursor {
            let op = if self.newest_first { "<" } else { ">" };
            conditions.push(format!("id {op} {}", bind(Param::Int(cursor))));
        }
        if let Some(event_id) = &self.event_id {
            let p = bind(Param::Text(event_id.clone()));
            conditions.push(if listing.event_id_nullable {
                format!("(event_id = {p} OR event_id IS NULL)")
            } else {
                format!("event_id = {p}")
            });
        }
        if let Some(since) = self.since_us {
            conditions.push(format!("{} >= {}", listing.at_us, bind(Param::Int(since))));
        }
        if let Some(until) = self.until_us {
            conditions.push(format!("{} < {}", listing.at_us, bind(Param::Int(until))));
        }
        let limit = bind(Param::Int(i64::try_from(self.limit).unwrap_or(i64::MAX)));
        let mut sql = format!(
            "SELECT {} FROM {}",
            listing.columns.replace("AT_US", listing.at_us),
            listing.table
        );
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        let order = if self.newest_first { " DESC" } else { "" };
        sql.push_str(&format!(" ORDER BY id{order} LIMIT {limit}"));
        (sql, params)
    }
}

/// A time given in microseconds since the epoch.
pub(crate) fn from_us(us: i64) -> std::time::SystemTime {
    let offset = std::time::Duration::from_micros(us.unsigned_abs());
    if us >= 0 {
        std::time::UNIX_EPOCH + offset
    } else {
        std::time::UNIX_EPOCH - offset
    }
}

/// Microseconds since the epoch of a time, rounded down (`ceil`: up).
pub(crate) fn to_us(time: std::time::SystemTime, ceil: bool) -> i64 {
    let (micros, negative) = match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => (after, false),
        Err(err) => (err.duration(), true),
    };
    let whole = i64::try_from(micros.as_micros()).unwrap_or(i64::MAX);
    let partial = micros.subsec_nanos() % 1000 != 0;
    match (negative, ceil && partial, !ceil && partial) {
        (false, true, _) => whole.saturating_add(1),
        (false, _, _) => whole,
        (true, _, true) => -whole - 1,
        (true, _, _) => -whole,
    }
}

/// A row of a listing: its id, its time (microseconds since the epoch) and
/// what it holds.
#[derive(Debug, Clone)]
pub struct Row<T> {
    pub(crate) id: i64,
    pub(crate) at_us: Option<i64>,
    pub(crate) item: T,
}

/// A delivery held by a consumer: a live lease (`retry: false`) or a
/// claimed row of the retry table.
#[derive(Debug, Clone)]
pub struct PendingRow {
    pub(crate) retry: bool,
    pub(crate) id: i64,
    pub(crate) consumer: String,
    /// Since its lease was taken or last extended.
    pub(crate) idle_ms: i64,
    pub(crate) deliveries: i64,
    pub(crate) events: i64,
    /// The event of a retry row.
    pub(crate) event: Option<RawEvent>,
    /// Milliseconds before its lease (or claim) expires.
    pub(crate) expires_ms: Option<i64>,
    /// The ids of the events it covers (at most 100), as a JSON array.
    pub(crate) event_ids: Option<String>,
}

/// A consumer holding deliveries: its name, how many events its live
/// leases and claimed retry rows cover, and since when it last took or
/// extended one (milliseconds).
#[derive(Debug, Clone)]
pub struct ConsumerRow {
    pub(crate) name: String,
    pub(crate) pending: i64,
    pub(crate) idle_ms: i64,
}

/// Counts of the store for `Inspect::stats`, read in one statement.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// The last id the log handed out (monotonic: retention does not lower
    /// it; on PostgreSQL, for a role that may not read the log's sequence,
    /// the highest id kept).
    pub(crate) emitted: i64,
    pub(crate) events: i64,
    pub(crate) results: i64,
    /// The group's dead letters.
    pub(crate) dead_letters: i64,
    /// As [`Backend::backlog`].
    pub(crate) backlog: i64,
    /// As [`Backend::oldest_unconsumed_ms`].
    pub(crate) oldest_ms: Option<i64>,
    /// Events covered by the group's live leases, plus its claimed retry rows.
    pub(crate) in_flight: i64,
    /// Distinct consumers holding live leases or claimed retry rows, or
    /// with a live heartbeat.
    pub(crate) consumers: i64,
}

/// The SQL of one database; the queue logic above it is shared.
#[async_trait]
pub trait Backend:
    crate::scheduled::Schedule
    + crate::leader::Leases
    + crate::limits::LimitStatements
    + Send
    + Sync
    + 'static
{
    /// Appends events in one statement, in order.
    async fn append(&self, events: &[NewEvent]) -> Result<()>;
    /// Saves listener results, and marks successes as done, in one statement.
    async fn save_results(&self, results: &[StoredResult]) -> Result<()>;
    /// `(event id, handler id)` of the successes recorded for these events.
    async fn succeeded(&self, event_ids: &[String]) -> Result<Vec<(String, String)>>;
    /// Claims the next unclaimed range of at most `max` committed events.
    async fn claim(&self, max: usize) -> Result<Option<LeaseRow>>;
    /// [`claim`](Self::claim), reading the lease's rows as well where the
    /// database does it in the same statement (one round trip).
    async fn claim_rows(&self, max: usize) -> Result<Claim> {
        Ok(match self.claim(max).await? {
            Some(lease) => Claim::Lease(lease, None),
            None => Claim::Empty(None),
        })
    }
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
    /// A row of the inspection listings.
    type ListedRow: crate::rows::Listed;
    /// The SQL of the inspection listings.
    const LISTINGS: crate::rows::Listings;
    /// The statements whose logic is written once over both databases.
    const COMMON: CommonSql;
    /// What a lock of a limit key is scoped by (PostgreSQL: the schema,
    /// so that stores in two schemas of one database do not wait for each
    /// other).
    fn lock_scope(&self) -> &str;
    /// The `n`-th parameter (from 1) of this database's statements.
    fn placeholder(n: usize) -> String;
    /// The store's consumer group.
    fn group(&self) -> &str;
    /// Runs `sql` (with [`placeholder`](Self::placeholder)s, the store's
    /// tables unqualified) and `params` through the readers; its rows.
    async fn fetch(&self, sql: String, params: Vec<Param>) -> Result<Vec<Self::ListedRow>>;
    /// Runs `sql` (as for [`fetch`](Self::fetch)) on the writer; how many
    /// rows it changed.
    async fn execute(&self, sql: String, params: Vec<Param>) -> Result<u64>;
    /// Runs a writing `sql` that returns rows (as for [`fetch`](Self::fetch))
    /// on the writer; its rows.
    async fn fetch_written(&self, sql: String, params: Vec<Param>) -> Result<Vec<Self::ListedRow>>;
    /// The rows of `listing` chosen by `scan`, read through the readers.
    async fn listing(&self, listing: &Listing, scan: &Scan) -> Result<Vec<Self::ListedRow>> {
        let (sql, params) = scan.sql(listing, self.group(), Self::placeholder);
        self.fetch(sql, params).await
    }
    /// The group's dead letters chosen by `scan`.
    async fn dead_letters(&self, scan: &Scan) -> Result<Vec<crate::SqlDeadLetter>> {
        let rows = self.listing(&Self::LISTINGS.dead_letters, scan).await?;
        rows.iter().map(crate::rows::Listed::dead_letter).collect()
    }
    /// The log's rows chosen by `scan`.
    async fn event_rows(&self, scan: &Scan) -> Result<Vec<Row<RawEvent>>> {
        let rows = self.listing(&Self::LISTINGS.events, scan).await?;
        rows.iter().map(crate::rows::Listed::event_row).collect()
    }
    /// The results chosen by `scan`.
    async fn result_rows(&self, scan: &Scan) -> Result<Vec<Row<StoredResult>>> {
        let rows = self.listing(&Self::LISTINGS.results, scan).await?;
        rows.iter().map(crate::rows::Listed::result_row).collect()
    }
    /// The store's counts, in one statement.
    async fn counts(&self) -> Result<Counts>;
    /// Each topic with its count among the newest `window` rows of the
    /// log, in one statement.
    async fn topic_counts(&self, window: usize) -> Result<Vec<(String, i64)>>;
    /// The group's live leases, then its claimed retry rows, after (or,
    /// newest first, before) `after` (`(0, id)` a lease, `(1, id)` a retry
    /// row), at most `limit`.
    async fn pending(
        &self,
        after: Option<(i64, i64)>,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<PendingRow>>;
    /// The consumers of the group: those holding live leases or claimed
    /// retry rows, and those whose heartbeat is live.
    async fn consumers(&self) -> Result<Vec<ConsumerRow>>;
    /// Copies row `id` of the log into the retry table, due at once, for
    /// the group; returns how many (0 when the row is gone).
    async fn retry_event(&self, id: i64) -> Result<u64>;
    /// Copies the group's dead letter `id` into the retry table, due at
    /// once (it stays a dead letter); returns how many.
    async fn retry_dead_copy(&self, id: i64) -> Result<u64>;
    /// Moves the group's dead letters with these ids to the retry table,
    /// due at once, in one transaction; returns how many.
    async fn replay_dead_ids(&self, ids: &[i64]) -> Result<u64>;
    /// Deletes the group's dead letters with these ids (all of them with
    /// `None`); returns how many.
    async fn purge_dead(&self, ids: Option<&[i64]>) -> Result<u64>;
    /// Moves the group's dead letters chosen by `filter` to the retry
    /// table, due at once; returns how many.
    async fn replay_dead(&self, filter: &crate::SqlDeadLetterFilter) -> Result<u64>;
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
    /// Per key of `keys`, the earliest position before `before` of an
    /// event of the group in a lease or in the retry table, leaving out the
    /// leases and retry rows this consumer holds (`(id, token)`): what
    /// holds back later events of the key (`ordered_by_key`).
    async fn key_blockers(
        &self,
        keys: &[String],
        before: Pos,
        own_leases: &[(i64, i64)],
        own_retries: &[(i64, i64)],
    ) -> Result<Vec<(String, Pos)>>;
    /// Records this consumer as live for `live_ms` (its heartbeat), and
    /// deletes the group's consumers expired for a day.
    async fn beat(&self, live_ms: i64) -> Result<()>;
    /// After a write was refused for lack of a privilege: which of these
    /// `(privilege, table)` grants the store lacks, in words.
    async fn lacking(&self, grants: &[(&'static str, &'static str)]) -> Result<String>;
    /// Wakes consumers in other processes (throttled by the caller).
    async fn notify_others(&self) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: Listing = Listing {
        columns: "id, AT_US, topic",
        table: "soiree_dead_letters",
        at_us: "at(created_at)",
        grouped: true,
        event_id_nullable: true,
    };

    #[test]
    fn a_scan_binds_only_the_parts_it_has() {
        let dollar = |n: usize| format!("${n}");
        let (sql, params) = Scan {
            limit: 11,
            ..Scan::default()
        }
        .sql(&LISTING, "g", dollar);
        assert_eq!(
            sql,
            "SELECT id, at(created_at), topic FROM soiree_dead_letters \
             WHERE group_name = $1 ORDER BY id LIMIT $2"
        );
        assert!(matches!(&params[..], [Param::Text(g), Param::Int(11)] if g == "g"));

        let scan = Scan {
            cursor: Some(7),
            newest_first: true,
            event_id: Some("e".into()),
            since_us: Some(1),
            until_us: Some(2),
            limit: 3,
        };
        let (sql, params) = scan.sql(&LISTING, "g", |n| format!("?{n}"));
        assert_eq!(
            sql,
            "SELECT id, at(created_at), topic FROM soiree_dead_letters \
             WHERE group_name = ?1 AND id < ?2 AND (event_id = ?3 OR event_id IS NULL) \
             AND at(created_at) >= ?4 AND at(created_at) < ?5 ORDER BY id DESC LIMIT ?6"
        );
        assert_eq!(params.len(), 6);
        let results = Listing {
            grouped: false,
            event_id_nullable: false,
            ..LISTING
        };
        let (sql, _) = scan.sql(&results, "g", |n| format!("?{n}"));
        assert!(sql.contains("WHERE id < ?1 AND event_id = ?2 AND"), "{sql}");
    }

    #[test]
    fn a_flawed_row_is_no_event_but_is_shown_lossily() {
        let raw = RawEvent {
            pos: Pos { tx: 0, id: 1 },
            topic: "order.paid".into(),
            payload: Some("{\"n\":\"\u{fffd}\"}".into()),
            properties: Some("{".into()),
            key: None,
            flaw: Some("decode error: not valid UTF-8 in payload (kept lossily)".into()),
        };
        assert!(raw.parse().unwrap_err().contains("UTF-8"));
        let shown = raw.parse_lossy();
        assert_eq!(shown.topic, "order.paid");
        assert_eq!(shown.payload, serde_json::json!({ "n": "\u{fffd}" }));
        assert!(shown.properties.is_empty());
        let garbage = RawEvent {
            payload: Some("not json".into()),
            flaw: None,
            ..raw
        };
        assert!(garbage.parse().is_err());
        assert_eq!(garbage.parse_lossy().payload, "not json");
    }

    #[test]
    fn times_round_to_microseconds_the_right_way() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_500);
        assert_eq!((to_us(t, false), to_us(t, true)), (1, 2));
        let before = std::time::UNIX_EPOCH - std::time::Duration::from_nanos(1_500);
        assert_eq!((to_us(before, false), to_us(before, true)), (-2, -1));
        assert_eq!(
            from_us(to_us(t, false)),
            std::time::UNIX_EPOCH + std::time::Duration::from_micros(1)
        );
        assert_eq!(
            from_us(-2),
            std::time::UNIX_EPOCH - std::time::Duration::from_micros(2)
        );
    }
}
