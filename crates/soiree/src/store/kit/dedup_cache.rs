//! The handler successes of the deliveries a consumer holds, fetched with
//! the deliveries so that the bus's per-listener dedup lookups
//! ([`HandlerDedup::handler_succeeded`](crate::HandlerDedup::handler_succeeded))
//! need no round trip.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

#[cfg(feature = "metrics")]
use crate::StoreMetrics;

/// The end of a settling call that left `count` deliveries unsettled for
/// their lost results ([`DedupCache::lost`]): counts them
/// (`soiree_store_acks_withheld_total`), logs them and returns
/// [`Error::ResultsNotSaved`](crate::Error::ResultsNotSaved); `Ok` when
/// there are none.
///
/// # Errors
///
/// [`Error::ResultsNotSaved`](crate::Error::ResultsNotSaved) when `count`
/// is not 0.
#[cfg(feature = "metrics")]
pub fn held_back(metrics: &StoreMetrics, count: usize) -> crate::Result<()> {
    if count == 0 {
        return Ok(());
    }
    metrics.acks_withheld.inc_by(count as u64);
    tracing::warn!(
        count,
        "deliveries not acknowledged: listener results of theirs could not be saved; they are delivered again after their lease"
    );
    Err(crate::Error::ResultsNotSaved { deliveries: count })
}

/// Succeeded listener ids by event id, for the deliveries a consumer holds
/// and has not settled yet.
///
/// A store fills it when it claims deliveries (one read of the successes
/// of the whole batch), records the successes of its own listeners as it
/// saves them, answers dedup lookups from it, and forgets a delivery once
/// it is acknowledged, failed or handed back. An event it does not hold is
/// not answered ([`succeeded`](Self::succeeded) returns `None`): the store
/// then asks its storage. A store keeps one cache per consumer group, as
/// successes count per group.
///
/// It also keeps which held events had a listener result lost (given up
/// after transient failures, see [`GivenUp::Lost`](super::GivenUp::Lost)):
/// a store's `ack` and `fail` ask [`lost`](Self::lost) and do not settle
/// those deliveries (results before ack, see
/// [`EventQueue::ack`](crate::EventQueue::ack)).
///
/// # Examples
///
/// ```
/// use soiree::kit::DedupCache;
///
/// let cache = DedupCache::default();
/// cache.insert("receipt-1", "evt-1", vec!["welcome".to_owned()]);
/// assert_eq!(cache.succeeded("evt-1", "welcome"), Some(true));
/// assert_eq!(cache.succeeded("evt-1", "audit"), Some(false));
/// cache.record("evt-1", "audit");
/// assert_eq!(cache.succeeded("evt-1", "audit"), Some(true));
/// // evt-2 is held with no success yet: its first one is first.
/// cache.insert("receipt-2", "evt-2", Vec::new());
/// assert_eq!(cache.record_first("evt-2", "welcome"), Some(true));
/// assert_eq!(cache.record_first("evt-2", "audit"), Some(false));
/// assert_eq!(cache.record_first("evt-3", "welcome"), None, "not held");
/// // A result of evt-1 could not be saved: its delivery is held back.
/// assert!(cache.results_lost("evt-1"));
/// assert_eq!(cache.lost(&["receipt-1".to_owned()]), [true]);
/// cache.remove(&["receipt-1".to_owned()]);
/// assert_eq!(cache.succeeded("evt-1", "welcome"), None);
/// assert!(!cache.results_lost("evt-1"), "no longer held");
/// ```
#[derive(Debug, Default)]
pub struct DedupCache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    succeeded: HashMap<String, HashSet<String>>,
    event_of_receipt: HashMap<String, String>,
    /// Held events with a listener result lost.
    results_lost: HashSet<String>,
}

impl State {
    /// Whether the event of `receipt` had a listener result lost.
    fn lost(&self, receipt: &str) -> bool {
        self.event_of_receipt
            .get(receipt)
            .is_some_and(|e| self.results_lost.contains(e))
    }
}

impl DedupCache {
    /// Remembers what the storage said for a delivery's event: the
    /// listeners that already succeeded for it.
    pub fn insert(&self, receipt: &str, event_id: &str, handlers: Vec<String>) {
        let mut state = self.lock();
        state
            .event_of_receipt
            .insert(receipt.to_owned(), event_id.to_owned());
        state
            .succeeded
            .entry(event_id.to_owned())
            .or_default()
            .extend(handlers);
    }

    /// [`insert`](Self::insert) for a batch of `(receipt, event id,
    /// handlers)`, under one lock.
    pub fn insert_many(&self, entries: impl IntoIterator<Item = (String, String, Vec<String>)>) {
        let mut state = self.lock();
        for (receipt, event_id, handlers) in entries {
            state
                .succeeded
                .entry(event_id.clone())
                .or_default()
                .extend(handlers);
            state.event_of_receipt.insert(receipt, event_id);
        }
    }

    /// Remembers which event a delivery is, without its successes (the
    /// storage could not be asked): dedup lookups go to the storage, and
    /// a lost result still holds the delivery back.
    pub fn hold(&self, receipt: &str, event_id: &str) {
        self.lock()
            .event_of_receipt
            .insert(receipt.to_owned(), event_id.to_owned());
    }

    /// Marks a held event as having a listener result lost, so that its
    /// delivery is not acknowledged ([`lost`](Self::lost)); `false` (and
    /// nothing marked) when no delivery of the event is held here.
    pub fn results_lost(&self, event_id: &str) -> bool {
        let mut state = self.lock();
        // A scan: only on a lost result, over the deliveries held.
        let held = state.succeeded.contains_key(event_id)
            || state.event_of_receipt.values().any(|e| e == event_id);
        if held {
            state.results_lost.insert(event_id.to_owned());
        }
        held
    }

    /// For each receipt, whether its event had a listener result lost: the
    /// deliveries `ack` and `fail` leave unsettled. The marks stay until
    /// [`remove`](Self::remove), so that a settling call tried again holds
    /// them back again.
    pub fn lost(&self, receipts: &[String]) -> Vec<bool> {
        let state = self.lock();
        if state.results_lost.is_empty() {
            return vec![false; receipts.len()];
        }
        receipts.iter().map(|r| state.lost(r)).collect()
    }

    /// The items (deliveries, failures, deferrals) whose events had no
    /// listener result lost, to settle now; `receipt` names an item's
    /// receipt. The others are held back ([`lost`](Self::lost)).
    pub fn settleable<T: Clone>(&self, items: &[T], receipt: impl Fn(&T) -> &str) -> Vec<T> {
        let state = self.lock();
        items
            .iter()
            .filter(|item| state.results_lost.is_empty() || !state.lost(receipt(item)))
            .cloned()
            .collect()
    }

    /// `Some(answer)` when the event is held here, `None` to ask the storage.
    pub fn succeeded(&self, event_id: &str, handler_id: &str) -> Option<bool> {
        Some(self.lock().succeeded.get(event_id)?.contains(handler_id))
    }

    /// Records a success of this process, for the event's later listeners
    /// (nothing when the event is not held here).
    pub fn record(&self, event_id: &str, handler_id: &str) {
        if let Some(handlers) = self.lock().succeeded.get_mut(event_id) {
            handlers.insert(handler_id.to_owned());
        }
    }

    /// [`record`](Self::record) that also tells whether this is the event's
    /// first known success: `Some(true)` when the held event had none,
    /// `Some(false)` when it had some, `None` (nothing recorded) when the
    /// event is not held here or its successes could not be read. Decided
    /// and recorded under one lock, so that of two listeners of one event
    /// succeeding at once only one is first.
    pub fn record_first(&self, event_id: &str, handler_id: &str) -> Option<bool> {
        let mut state = self.lock();
        let handlers = state.succeeded.get_mut(event_id)?;
        let first = handlers.is_empty();
        handlers.insert(handler_id.to_owned());
        Some(first)
    }

    /// Forgets settled deliveries (acknowledged, failed or handed back).
    pub fn remove(&self, receipts: &[String]) {
        let mut state = self.lock();
        for receipt in receipts {
            if let Some(event_id) = state.event_of_receipt.remove(receipt) {
                state.succeeded.remove(&event_id);
                state.results_lost.remove(&event_id);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere leaves the maps consistent: every update is
        // one insert or remove.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
