//! What to list: filters, pages and selections of dead letters.

use std::time::SystemTime;

use crate::{StoredEvent, StoredResult, topic_matches};

/// Narrows a listing: a topic pattern (wildcards as in
/// [`EventBus::on`](crate::EventBus::on)), an event id, a time range. Every
/// part left out matches everything.
///
/// # Examples
///
/// ```
/// use soiree::{Filter, StoredEvent};
///
/// let filter = Filter::default().topic("order.*");
/// let event = StoredEvent {
///     topic: "order.paid".into(),
///     payload: serde_json::json!({"cents": 100}),
///     properties: Default::default(),
/// };
/// assert!(filter.matches_event(&event, None));
/// assert!(!Filter::default().event_id("evt-1").matches_event(&event, None));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Filter {
    /// Only events (or results, dead letters) whose topic matches this pattern.
    pub topic: Option<String>,
    /// Only this event id (`soiree.event_id`).
    pub event_id: Option<String>,
    /// Only what was stored at or after this time.
    pub since: Option<SystemTime>,
    /// Only what was stored before this time.
    pub until: Option<SystemTime>,
}

impl Filter {
    /// Only topics matching `pattern`.
    #[must_use]
    pub fn topic(mut self, pattern: impl Into<String>) -> Self {
        self.topic = Some(pattern.into());
        self
    }

    /// Only this event id.
    #[must_use]
    pub fn event_id(mut self, event_id: impl Into<String>) -> Self {
        self.event_id = Some(event_id.into());
        self
    }

    /// Only what was stored at or after `time`.
    #[must_use]
    pub fn since(mut self, time: SystemTime) -> Self {
        self.since = Some(time);
        self
    }

    /// Only what was stored before `time`.
    #[must_use]
    pub fn until(mut self, time: SystemTime) -> Self {
        self.until = Some(time);
        self
    }

    /// Reports whether the filter selects everything.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Reports whether `event`, stored at `at` (when the store knows), is
    /// selected. An unknown time passes a time range.
    pub fn matches_event(&self, event: &StoredEvent, at: Option<SystemTime>) -> bool {
        self.matches(&event.topic, event_id_text(event).as_deref(), at)
    }

    /// Reports whether `result`, stored at `at`, is selected.
    pub fn matches_result(&self, result: &StoredResult, at: Option<SystemTime>) -> bool {
        self.matches(&result.topic, Some(&result.event_id), at)
    }

    /// Reports whether a record with this topic, event id and time is
    /// selected (for records that are not events, such as dead letters
    /// whose row is malformed).
    pub fn matches(&self, topic: &str, event_id: Option<&str>, at: Option<SystemTime>) -> bool {
        if let Some(pattern) = &self.topic
            && !(pattern == topic || topic_matches(pattern, topic))
        {
            return false;
        }
        if let Some(wanted) = &self.event_id
            && event_id != Some(wanted.as_str())
        {
            return false;
        }
        match at {
            Some(at) => {
                self.since.is_none_or(|since| at >= since)
                    && self.until.is_none_or(|until| at < until)
            }
            None => true,
        }
    }
}

/// The event id of a stored event as text, whether the property holds a
/// JSON string or a number (replay and lookups find `4242` by `"4242"`).
pub fn event_id_text(event: &StoredEvent) -> Option<String> {
    match event.properties.get(crate::PROPERTY_EVENT_ID)? {
        serde_json::Value::String(id) => Some(id.clone()),
        serde_json::Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// Which page of a listing to read.
///
/// Records have ids in the store's order ([`Record::id`](super::Record)); a
/// page holds the records after `cursor` (oldest first) or before it
/// (`newest_first`), at most `limit` of them. A filtered page may hold fewer
/// than `limit` records while more follow: stores scan a bounded number of
/// records per call and return where they stopped in `next`.
///
/// # Examples
///
/// ```
/// use soiree::{Filter, Query};
///
/// let newest = Query::newest(20).filter(Filter::default().topic("order.**"));
/// assert!(newest.newest_first);
/// assert_eq!(newest.limit, 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Query {
    /// Which records.
    pub filter: Filter,
    /// Start after (or, newest first, before) this record id.
    pub cursor: Option<String>,
    /// At most this many records (at least 1, at most [`Query::MAX_LIMIT`]).
    pub limit: usize,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
}

impl Default for Query {
    fn default() -> Self {
        Self::oldest(100)
    }
}

impl Query {
    /// The largest page a store returns.
    pub const MAX_LIMIT: usize = 10_000;

    /// The first `limit` records, oldest first.
    pub fn oldest(limit: usize) -> Self {
        Self {
            filter: Filter::default(),
            cursor: None,
            limit: limit.clamp(1, Self::MAX_LIMIT),
            newest_first: false,
        }
    }

    /// The last `limit` records, newest first.
    pub fn newest(limit: usize) -> Self {
        Self {
            newest_first: true,
            ..Self::oldest(limit)
        }
    }

    /// Narrows the listing.
    #[must_use]
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Continues after (or before) a record id, as a page's `next` gives.
    #[must_use]
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// How many records a store reads at most to fill one filtered page:
    /// 20 pages' worth, at least 1,000.
    pub fn scan_budget(&self) -> usize {
        if self.filter.is_empty() {
            self.limit
        } else {
            self.limit.saturating_mul(20).max(1_000)
        }
    }
}

/// Which dead letters to replay or purge.
///
/// # Examples
///
/// ```
/// use soiree::{DeadLetterSelection, Filter};
///
/// let by_topic = DeadLetterSelection::Matching(Filter::default().topic("billing.*"));
/// let two = DeadLetterSelection::Ids(vec!["1".into(), "2".into()]);
/// assert_ne!(by_topic, two);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLetterSelection {
    /// These dead letters, by [`DeadLetter::id`](super::DeadLetter).
    Ids(Vec<String>),
    /// Every dead letter the filter selects.
    Matching(Filter),
}
