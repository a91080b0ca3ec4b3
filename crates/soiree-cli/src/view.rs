//! What `--json` prints: serializable views of the store's records, with
//! times in RFC 3339 and durations in milliseconds.

use serde::Serialize;
use serde_json::{Map, Value};
use soiree::{
    ConsumerInfo, DeadLetter, EventDetail, Page, PendingDelivery, Rates, Record, StoreInfo,
    StoreStats, StoredEvent, StoredResult,
};

use crate::time::{format_time, millis};

/// A page of a listing: its records and the cursor of the next page.
#[derive(Debug, Serialize)]
pub(crate) struct PageView<T> {
    pub(crate) items: Vec<T>,
    /// Pass as `--after` for the next page; `null` on the last one.
    pub(crate) next: Option<String>,
}

impl<T> PageView<T> {
    pub(crate) fn new<S>(page: Page<S>, view: impl Fn(S) -> T) -> Self {
        Self {
            items: page.items.into_iter().map(view).collect(),
            next: page.next,
        }
    }
}

/// What the store is.
#[derive(Debug, Serialize)]
pub(crate) struct StoreView {
    pub(crate) kind: String,
    pub(crate) location: String,
    pub(crate) group: Option<String>,
}

impl From<StoreInfo> for StoreView {
    fn from(info: StoreInfo) -> Self {
        Self {
            kind: info.kind,
            location: info.location,
            group: info.group,
        }
    }
}

/// `soiree stats --json`.
#[derive(Debug, Serialize)]
pub(crate) struct StatsView {
    pub(crate) store: StoreView,
    pub(crate) taken_at: Option<String>,
    pub(crate) emitted: u64,
    pub(crate) events: u64,
    pub(crate) results: u64,
    pub(crate) backlog: u64,
    pub(crate) in_flight: u64,
    pub(crate) dead_letters: u64,
    /// Delayed events waiting for their due time.
    pub(crate) scheduled: u64,
    pub(crate) consumers: u64,
    pub(crate) oldest_pending_age_ms: Option<u64>,
    /// Between the two snapshots; `null` with `--interval 0s`.
    pub(crate) rates: Option<RatesView>,
}

impl StatsView {
    pub(crate) fn new(info: StoreInfo, stats: &StoreStats, rates: Option<Rates>) -> Self {
        Self {
            store: info.into(),
            taken_at: stats.taken_at.map(format_time),
            emitted: stats.emitted,
            events: stats.events,
            results: stats.results,
            backlog: stats.backlog,
            in_flight: stats.in_flight,
            dead_letters: stats.dead_letters,
            scheduled: stats.scheduled,
            consumers: stats.consumers,
            oldest_pending_age_ms: stats.oldest_pending_age.map(millis),
            rates: rates.map(|rates| RatesView {
                emitted_per_sec: rates.emitted_per_sec,
                handled_per_sec: rates.handled_per_sec,
            }),
        }
    }
}

/// Events per second.
#[derive(Debug, Serialize)]
pub(crate) struct RatesView {
    pub(crate) emitted_per_sec: f64,
    pub(crate) handled_per_sec: f64,
}

/// A stored event.
#[derive(Debug, Serialize)]
pub(crate) struct EventView {
    /// The store's id (a cursor).
    pub(crate) id: String,
    pub(crate) at: Option<String>,
    pub(crate) topic: String,
    pub(crate) event_id: Option<String>,
    pub(crate) payload: Value,
    pub(crate) properties: Map<String, Value>,
}

impl From<Record<StoredEvent>> for EventView {
    fn from(record: Record<StoredEvent>) -> Self {
        let event_id = soiree::inspect::event_id_text(&record.item);
        Self {
            id: record.id,
            at: record.at.map(format_time),
            topic: record.item.topic,
            event_id,
            payload: record.item.payload,
            properties: record.item.properties,
        }
    }
}

/// A listener result.
#[derive(Debug, Serialize)]
pub(crate) struct ResultView {
    pub(crate) id: String,
    pub(crate) at: Option<String>,
    pub(crate) topic: String,
    pub(crate) event_id: String,
    pub(crate) listener: String,
    pub(crate) attempt: u32,
    pub(crate) succeeded: bool,
    /// `succeeded`, `snoozed` or `failed` ([`StoredResult::outcome`]).
    pub(crate) outcome: &'static str,
    pub(crate) error: Option<String>,
}

impl From<Record<StoredResult>> for ResultView {
    fn from(record: Record<StoredResult>) -> Self {
        let result = record.item;
        Self {
            id: record.id,
            at: record.at.map(format_time),
            succeeded: result.succeeded(),
            outcome: result.outcome(),
            topic: result.topic,
            event_id: result.event_id,
            listener: result.handler_id,
            attempt: result.attempt,
            error: result.error,
        }
    }
}

/// A dead letter.
#[derive(Debug, Serialize)]
pub(crate) struct DeadLetterView {
    /// The store's id (for `show`, `replay --id`, `purge --id`; a cursor).
    pub(crate) id: String,
    pub(crate) at: Option<String>,
    pub(crate) topic: Option<String>,
    pub(crate) event_id: Option<String>,
    pub(crate) error: String,
    pub(crate) deliveries: u32,
    /// Its event; `null` when the entry is not an event (see `raw`).
    pub(crate) event: Option<EventBody>,
    /// The entry as stored, when it is not an event.
    pub(crate) raw: Option<String>,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(letter: DeadLetter) -> Self {
        Self {
            topic: letter.topic().map(str::to_owned),
            event_id: letter.event_id(),
            id: letter.id,
            at: letter.at.map(format_time),
            error: letter.error,
            deliveries: letter.deliveries,
            event: letter.event.map(EventBody::from),
            raw: letter.raw,
        }
    }
}

/// An event's topic, payload and properties.
#[derive(Debug, Serialize)]
pub(crate) struct EventBody {
    pub(crate) topic: String,
    pub(crate) payload: Value,
    pub(crate) properties: Map<String, Value>,
}

impl From<StoredEvent> for EventBody {
    fn from(event: StoredEvent) -> Self {
        Self {
            topic: event.topic,
            payload: event.payload,
            properties: event.properties,
        }
    }
}

/// `soiree event ID --json`.
#[derive(Debug, Serialize)]
pub(crate) struct EventDetailView {
    pub(crate) event: EventView,
    pub(crate) results: Vec<ResultView>,
    pub(crate) dead_letters: Vec<DeadLetterView>,
}

impl From<EventDetail> for EventDetailView {
    fn from(detail: EventDetail) -> Self {
        Self {
            event: detail.event.into(),
            results: detail.results.into_iter().map(Into::into).collect(),
            dead_letters: detail.dead_letters.into_iter().map(Into::into).collect(),
        }
    }
}

/// A pending delivery.
#[derive(Debug, Serialize)]
pub(crate) struct PendingView {
    pub(crate) id: String,
    pub(crate) consumer: String,
    pub(crate) idle_ms: u64,
    pub(crate) deliveries: u32,
    pub(crate) events: u64,
    pub(crate) topic: Option<String>,
    pub(crate) event_id: Option<String>,
    /// The ids of the events it covers (a SQL lease: at most 100).
    pub(crate) event_ids: Vec<String>,
    /// Time left before its lease expires, when the store knows.
    pub(crate) expires_in_ms: Option<u64>,
}

impl From<PendingDelivery> for PendingView {
    fn from(pending: PendingDelivery) -> Self {
        Self {
            event_ids: pending.event_ids.clone(),
            expires_in_ms: pending.expires_in.map(millis),
            topic: pending.event.as_ref().map(|event| event.topic.clone()),
            event_id: pending
                .event
                .as_ref()
                .and_then(soiree::inspect::event_id_text),
            id: pending.id,
            consumer: pending.consumer,
            idle_ms: millis(pending.idle),
            deliveries: pending.deliveries,
            events: pending.events,
        }
    }
}

/// A consumer of the group.
#[derive(Debug, Serialize)]
pub(crate) struct ConsumerView {
    pub(crate) name: String,
    pub(crate) pending: u64,
    pub(crate) idle_ms: Option<u64>,
}

impl From<ConsumerInfo> for ConsumerView {
    fn from(consumer: ConsumerInfo) -> Self {
        Self {
            name: consumer.name,
            pending: consumer.pending,
            idle_ms: consumer.idle.map(millis),
        }
    }
}

/// `soiree consumers --json`.
#[derive(Debug, Serialize)]
pub(crate) struct ConsumersView {
    pub(crate) group: Option<String>,
    pub(crate) consumers: Vec<ConsumerView>,
}

/// What a replay or purge did.
#[derive(Debug, Serialize)]
pub(crate) struct ActionView {
    /// `replay`, `purge`.
    pub(crate) action: &'static str,
    /// Dead letters (or events) selected.
    pub(crate) selected: u64,
    /// Of those, how many were replayed or purged.
    pub(crate) done: u64,
    /// The event replayed, for `soiree replay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) event_id: Option<String>,
    /// `--dry-run`: nothing was changed (`done` is 0).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) dry_run: bool,
    /// `dead-letters … --dry-run`: the dead letters selected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) items: Option<Vec<DeadLetterView>>,
}
