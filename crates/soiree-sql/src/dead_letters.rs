//! Dead letters: what they hold and which of them to replay.

/// An event set aside in `soiree_dead_letters`: its listeners failed (see
/// [`FailurePolicy`](crate::FailurePolicy)), it was delivered more than
/// `max_deliveries` times without acknowledgement, or its row is not an
/// event. Listed with the stores' own `sql_dead_letters(cursor, limit)`, with
/// the columns as stored; [`soiree::Inspect::dead_letters`] lists the same
/// letters as store-neutral [`soiree::DeadLetter`]s (`From` converts one).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqlDeadLetter {
    /// The dead letter's id (increasing).
    pub id: i64,
    /// The event's topic as stored (possibly invalid).
    pub topic: Option<String>,
    /// The event's id (`soiree.event_id`), when it has one.
    pub event_id: Option<String>,
    /// The payload's JSON text as stored (possibly not JSON).
    pub payload: Option<String>,
    /// The properties' JSON text as stored.
    pub properties: Option<String>,
    /// Why it is here: the first listener error, or the delivery count.
    pub error: String,
    /// How many times the event was delivered.
    pub deliveries: u32,
    /// When it was set aside.
    pub at: Option<std::time::SystemTime>,
}

impl SqlDeadLetter {
    /// The event, when the row holds one (a malformed row does not).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo(store: soiree_sql::SqliteStore) -> soiree_sql::Result<()> {
    /// for dead in store.sql_dead_letters(None, 10).await?.items {
    ///     if let Some(event) = dead.event() {
    ///         println!("{} {}", event.topic, event.payload);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn event(&self) -> Option<soiree::StoredEvent> {
        let raw = crate::backend::RawEvent {
            pos: crate::backend::Pos { tx: 0, id: 0 },
            topic: self.topic.clone()?,
            payload: self.payload.clone(),
            properties: self.properties.clone(),
            key: None,
            flaw: None,
        };
        raw.parse().ok()
    }
}

/// The dead letter as [`soiree::Inspect`] lists it; a row that holds no
/// event keeps what is stored in `raw`: a JSON object of the stored texts
/// (`topic`, `payload`, `properties`).
///
/// # Examples
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn demo(store: soiree_sql::SqliteStore) -> soiree_sql::Result<()> {
/// for dead in store.sql_dead_letters(None, 10).await?.items {
///     let letter = soiree::DeadLetter::from(dead);
///     println!("{} {:?} {}", letter.id, letter.topic(), letter.error);
/// }
/// # Ok(()) }
/// ```
impl From<SqlDeadLetter> for soiree::DeadLetter {
    fn from(letter: SqlDeadLetter) -> Self {
        let converted = match letter.event() {
            Some(event) => soiree::DeadLetter::new(
                letter.id.to_string(),
                event,
                letter.error,
                letter.deliveries,
            ),
            None => {
                let raw = serde_json::json!({
                    "topic": letter.topic,
                    "payload": letter.payload,
                    "properties": letter.properties,
                });
                soiree::DeadLetter::malformed(letter.id.to_string(), raw.to_string(), letter.error)
                    .deliveries(letter.deliveries)
            }
        };
        converted.at(letter.at)
    }
}

/// Which dead letters of the store's group to replay with the stores' own
/// `replay_sql_dead_letters`: all by default, narrowed by topic or event id, at
/// most `limit` of them (oldest first). [`soiree::Inspect`] takes a
/// store-neutral [`soiree::DeadLetterSelection`] instead (topic patterns,
/// time ranges, ids).
///
/// # Examples
///
/// ```
/// use soiree_sql::SqlDeadLetterFilter;
///
/// let filter = SqlDeadLetterFilter::all().topic("order.paid").limit(100);
/// assert_eq!(filter.max(), 100);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlDeadLetterFilter {
    pub(crate) topic: Option<String>,
    pub(crate) event_id: Option<String>,
    pub(crate) limit: usize,
}

impl Default for SqlDeadLetterFilter {
    fn default() -> Self {
        Self::all()
    }
}

impl SqlDeadLetterFilter {
    /// Every dead letter of the group (up to 10,000 per call).
    pub fn all() -> Self {
        Self {
            topic: None,
            event_id: None,
            limit: 10_000,
        }
    }

    /// Only the dead letters of this topic.
    #[must_use]
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Only the dead letters of this event id.
    #[must_use]
    pub fn event_id(mut self, event_id: impl Into<String>) -> Self {
        self.event_id = Some(event_id.into());
        self
    }

    /// At most this many (oldest first; at least 1, at most 100,000).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.clamp(1, 100_000);
        self
    }

    /// How many dead letters one replay takes at most.
    pub fn max(&self) -> usize {
        self.limit
    }
}

/// A snapshot of a store's group, from `stats` (which also sets the
/// `soiree_store_queue_length`, `soiree_store_oldest_unconsumed_age_seconds`
/// and `soiree_store_xmin_lag_transactions` gauges).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Events not yet acknowledged by the group (unclaimed, leased, or
    /// waiting in the retry table).
    pub backlog: u64,
    /// How long the oldest of them has been in the log, if any.
    pub oldest_unconsumed_age: Option<std::time::Duration>,
    /// PostgreSQL: how many transactions the claim horizon (the oldest
    /// running transaction) lags behind the next one; a large value means a
    /// long transaction somewhere delays delivery. `None` on SQLite.
    pub xmin_lag: Option<u64>,
}
