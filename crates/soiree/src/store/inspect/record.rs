//! What an inspection returns: records, stats, consumers, dead letters.

use std::time::{Duration, SystemTime};

use crate::{StoredEvent, StoredResult};

/// A stored item with the store's id for it and the time it was stored.
///
/// # Examples
///
/// ```
/// use soiree::{Record, StoredResult};
///
/// let record = Record {
///     id: "1700000000000-0".to_owned(),
///     at: None,
///     item: StoredResult::new("user.created", "evt-1", "welcome", 1, None),
/// };
/// assert!(record.item.succeeded());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Record<T> {
    /// The store's id: a stream entry id, a row id. Pass it as a
    /// [`Query`](super::Query) cursor to continue after it.
    pub id: String,
    /// When it was stored, when the store knows.
    pub at: Option<SystemTime>,
    /// The event or result.
    pub item: T,
}

/// One page of records, with the cursor of the next page.
pub type RecordPage<T> = super::super::Page<Record<T>>;

/// A stored event with everything the store knows of it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EventDetail {
    /// The event as stored (the newest copy, for an event replayed).
    pub event: Record<StoredEvent>,
    /// The outcome of every listener attempt stored for its event id,
    /// oldest first.
    pub results: Vec<Record<StoredResult>>,
    /// Its dead letters, if it failed.
    pub dead_letters: Vec<DeadLetter>,
}

impl EventDetail {
    /// Everything known of an event.
    pub fn new(
        event: Record<StoredEvent>,
        results: Vec<Record<StoredResult>>,
        dead_letters: Vec<DeadLetter>,
    ) -> Self {
        Self {
            event,
            results,
            dead_letters,
        }
    }
}

/// An event set aside: its listeners failed after their retries, it was
/// delivered too often, or its entry is not an event at all.
///
/// # Examples
///
/// ```
/// use soiree::DeadLetter;
///
/// let letter = DeadLetter::malformed("7", "not json", "expected value at line 1");
/// assert!(letter.event.is_none());
/// assert_eq!(letter.raw.as_deref(), Some("not json"));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The store's id for the dead letter (replay and purge take it).
    pub id: String,
    /// The event, when the entry holds one.
    pub event: Option<StoredEvent>,
    /// The entry as stored, when it is not an event.
    pub raw: Option<String>,
    /// Why it is here: the first listener error, or the delivery count.
    pub error: String,
    /// How many times the event was delivered, when the store knows.
    pub deliveries: u32,
    /// When it was set aside, when the store knows.
    pub at: Option<SystemTime>,
}

impl DeadLetter {
    /// A dead letter holding an event.
    pub fn new(
        id: impl Into<String>,
        event: StoredEvent,
        error: impl Into<String>,
        deliveries: u32,
    ) -> Self {
        Self {
            id: id.into(),
            event: Some(event),
            raw: None,
            error: error.into(),
            deliveries,
            at: None,
        }
    }

    /// A dead letter whose entry is not an event.
    pub fn malformed(
        id: impl Into<String>,
        raw: impl Into<String>,
        error: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            event: None,
            raw: Some(raw.into()),
            error: error.into(),
            deliveries: 0,
            at: None,
        }
    }

    /// Sets when it was set aside.
    #[must_use]
    pub fn at(mut self, at: Option<SystemTime>) -> Self {
        self.at = at;
        self
    }

    /// Sets the delivery count.
    #[must_use]
    pub fn deliveries(mut self, deliveries: u32) -> Self {
        self.deliveries = deliveries;
        self
    }

    /// The topic of its event, if it holds one.
    pub fn topic(&self) -> Option<&str> {
        self.event.as_ref().map(|event| event.topic.as_str())
    }

    /// The id of its event, if it holds one with an id.
    pub fn event_id(&self) -> Option<String> {
        self.event.as_ref().and_then(super::event_id_text)
    }
}

/// A delayed event a store holds until its due time
/// ([`Inspect::scheduled`](super::Inspect::scheduled)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScheduledEvent {
    /// The store's id for it (the cursor of the next page).
    pub id: String,
    /// When it is due.
    pub due_at: SystemTime,
    /// The event (its id: [`event_id`](Self::event_id)).
    pub event: StoredEvent,
}

impl ScheduledEvent {
    /// A delayed event.
    pub fn new(id: impl Into<String>, due_at: SystemTime, event: StoredEvent) -> Self {
        Self {
            id: id.into(),
            due_at,
            event,
        }
    }

    /// The id of its event, if it has one.
    pub fn event_id(&self) -> Option<String> {
        super::event_id_text(&self.event)
    }
}

/// A leader lease as a store holds it
/// ([`Inspect::leader_leases`](super::Inspect::leader_leases)): the current or last
/// grant of one name.
///
/// A lease's row stays after it lapses or is released (the next grant goes
/// on from its token and progress), so a listing shows expired grants too:
/// [`held`](Self::held) tells them apart.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use soiree::inspect::LeaseInfo;
///
/// let expires = SystemTime::now() + Duration::from_secs(10);
/// let lease = LeaseInfo::new("nightly-report", "host-a", 3, expires, true, Some(1_700_000_000_000));
/// assert!(lease.held);
/// assert!(lease.progress_time().is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseInfo {
    /// The lease's name (a periodic schedule's name, for periodic events).
    pub name: String,
    /// Who holds it, or held it last.
    pub holder: String,
    /// The fencing token of the grant.
    pub token: u64,
    /// When the grant expires (or expired) unless renewed, on the clock
    /// that measures it (the server's on PostgreSQL and Redis).
    pub expires_at: SystemTime,
    /// Whether the grant was unexpired when read, on that clock.
    pub held: bool,
    /// The number its holders record with it: a periodic schedule's last
    /// fired tick, in Unix milliseconds; `None` before any.
    pub progress: Option<i64>,
}

impl LeaseInfo {
    /// A lease as read from a store.
    pub fn new(
        name: impl Into<String>,
        holder: impl Into<String>,
        token: u64,
        expires_at: SystemTime,
        held: bool,
        progress: Option<i64>,
    ) -> Self {
        Self {
            name: name.into(),
            holder: holder.into(),
            token,
            expires_at,
            held,
            progress,
        }
    }

    /// The progress read as Unix milliseconds (a periodic schedule's last
    /// tick); `None` without progress or for a negative one.
    pub fn progress_time(&self) -> Option<SystemTime> {
        let ms = u64::try_from(self.progress?).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms))
    }
}

/// A listener limit's slot in use
/// ([`Inspect::limit_slots`](super::Inspect::limit_slots)): one of the
/// places of a [`SharedLimits`](crate::SharedLimits) key, held by a running
/// listener until it returns or the slot expires.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use soiree::inspect::LimitSlot;
///
/// let slot = LimitSlot::new("mailer", "a1b2", SystemTime::now() + Duration::from_secs(30));
/// assert_eq!(slot.key, "mailer");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitSlot {
    /// The limit's key: a listener id, or a listener id and a key value.
    pub key: String,
    /// The holder's token (one per acquisition).
    pub holder: String,
    /// When the slot expires unless renewed.
    pub expires_at: SystemTime,
}

impl LimitSlot {
    /// A slot as read from a store.
    pub fn new(key: impl Into<String>, holder: impl Into<String>, expires_at: SystemTime) -> Self {
        Self {
            key: key.into(),
            holder: holder.into(),
            expires_at,
        }
    }
}

/// A delivery taken by a consumer and not yet acknowledged.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PendingDelivery {
    /// The store's id for it (an entry id; a lease on SQL).
    pub id: String,
    /// The consumer holding it.
    pub consumer: String,
    /// Time since it was delivered (or its lease last extended).
    pub idle: Duration,
    /// How many times it was delivered.
    pub deliveries: u32,
    /// How many events it covers (a SQL lease covers a range of the log).
    pub events: u64,
    /// Its event, when the store can tell cheaply.
    pub event: Option<StoredEvent>,
    /// The ids of the events it covers, in order, when the store can tell
    /// (a SQL lease lists at most [`PendingDelivery::LISTED_EVENT_IDS`];
    /// `events` says how many it covers).
    pub event_ids: Vec<String>,
    /// Time left before its lease expires and another consumer may take
    /// it, when the store knows (SQL; zero once expired).
    pub expires_in: Option<Duration>,
}

impl PendingDelivery {
    /// A pending delivery of one event.
    pub fn new(
        id: impl Into<String>,
        consumer: impl Into<String>,
        idle: Duration,
        deliveries: u32,
    ) -> Self {
        Self {
            id: id.into(),
            consumer: consumer.into(),
            idle,
            deliveries,
            events: 1,
            event: None,
            event_ids: Vec::new(),
            expires_in: None,
        }
    }

    /// How many event ids a store lists per delivery, at most.
    pub const LISTED_EVENT_IDS: usize = 100;

    /// Sets the ids of the events it covers.
    #[must_use]
    pub fn event_ids(mut self, ids: Vec<String>) -> Self {
        self.event_ids = ids;
        self
    }

    /// Sets the time left before its lease expires.
    #[must_use]
    pub fn expires_in(mut self, left: Option<Duration>) -> Self {
        self.expires_in = left;
        self
    }

    /// Sets how many events it covers.
    #[must_use]
    pub fn events(mut self, events: u64) -> Self {
        self.events = events;
        self
    }

    /// Sets its event, and its [`event_ids`](Self::event_ids) to the
    /// event's id when none were set.
    #[must_use]
    pub fn event(mut self, event: Option<StoredEvent>) -> Self {
        if self.event_ids.is_empty()
            && let Some(id) = event.as_ref().and_then(super::event_id_text)
        {
            self.event_ids = vec![id];
        }
        self.event = event;
        self
    }
}

/// A consumer of the store's group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerInfo {
    /// Its name.
    pub name: String,
    /// Deliveries it holds unacknowledged.
    pub pending: u64,
    /// Time since it was last seen reading or acknowledging, when known.
    pub idle: Option<Duration>,
}

impl ConsumerInfo {
    /// A consumer.
    pub fn new(name: impl Into<String>, pending: u64, idle: Option<Duration>) -> Self {
        Self {
            name: name.into(),
            pending,
            idle,
        }
    }
}

/// How many of the newest stored events each topic has
/// ([`Inspect::topic_counts`](super::Inspect::topic_counts)).
///
/// # Examples
///
/// ```
/// use soiree::inspect::TopicCounts;
///
/// let counts = TopicCounts::new(3, [("b".to_owned(), 1), ("a".to_owned(), 2)]);
/// assert_eq!(counts.topics[0], ("a".to_owned(), 2));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicCounts {
    /// How many events were counted: the window asked for, or fewer when
    /// the store holds fewer.
    pub scanned: u64,
    /// Each topic with its count, the most frequent first, then by name.
    pub topics: Vec<(String, u64)>,
}

impl TopicCounts {
    /// Counts over `scanned` events, sorted most frequent first.
    pub fn new(scanned: u64, topics: impl IntoIterator<Item = (String, u64)>) -> Self {
        let mut topics: Vec<(String, u64)> = topics.into_iter().collect();
        topics.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Self { scanned, topics }
    }
}

/// What a store is, for titles and logs: never a password.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreInfo {
    /// `memory`, `redis`, `postgres`, `sqlite`.
    pub kind: String,
    /// Where it is, without credentials (`redis://127.0.0.1:6379/0`, a file).
    pub location: String,
    /// The consumer group it reads for, if any.
    pub group: Option<String>,
}

impl StoreInfo {
    /// A description.
    pub fn new(
        kind: impl Into<String>,
        location: impl Into<String>,
        group: Option<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            location: location.into(),
            group,
        }
    }
}

/// Counts of what a store holds, at one moment.
///
/// Rates come from two snapshots: see [`StoreStats::rates_since`].
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct StoreStats {
    /// When the snapshot was taken.
    pub taken_at: Option<SystemTime>,
    /// Events ever appended (monotonic while the store lives; retention does
    /// not lower it where the store can tell).
    pub emitted: u64,
    /// Events the store holds now.
    pub events: u64,
    /// Listener results the store holds now.
    pub results: u64,
    /// Events not yet acknowledged by the group: queued and in flight.
    pub backlog: u64,
    /// Delayed events not yet due (not in the backlog), where the store
    /// schedules.
    pub scheduled: u64,
    /// Deliveries taken by consumers and not yet acknowledged.
    pub in_flight: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Consumers of the group.
    pub consumers: u64,
    /// How long the oldest unacknowledged event has waited, if any.
    pub oldest_pending_age: Option<Duration>,
}

/// Rates between two [`StoreStats`] snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Rates {
    /// Events appended per second.
    pub emitted_per_sec: f64,
    /// Events acknowledged per second (appended minus backlog growth).
    pub handled_per_sec: f64,
}

impl StoreStats {
    /// The rates between an earlier snapshot and this one; `None` when the
    /// snapshots carry no times or were taken out of order.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use soiree::StoreStats;
    ///
    /// let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    /// let mut before = StoreStats::default();
    /// before.taken_at = Some(t0);
    /// before.emitted = 100;
    /// before.backlog = 10;
    /// let mut now = before.clone();
    /// now.taken_at = Some(t0 + Duration::from_secs(2));
    /// now.emitted = 300;
    /// now.backlog = 30;
    /// let rates = now.rates_since(&before).unwrap();
    /// assert_eq!(rates.emitted_per_sec, 100.0);
    /// assert_eq!(rates.handled_per_sec, 90.0);
    /// ```
    pub fn rates_since(&self, earlier: &StoreStats) -> Option<Rates> {
        let secs = self
            .taken_at?
            .duration_since(earlier.taken_at?)
            .ok()?
            .as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let emitted = self.emitted.saturating_sub(earlier.emitted) as f64;
        let handled = (emitted + earlier.backlog as f64 - self.backlog as f64).max(0.0);
        Some(Rates {
            emitted_per_sec: emitted / secs,
            handled_per_sec: handled / secs,
        })
    }
}
