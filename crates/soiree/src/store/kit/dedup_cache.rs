//! The handler successes of the deliveries a consumer holds, fetched with
//! the deliveries so that the bus's per-listener dedup lookups
//! ([`HandlerDedup::handler_succeeded`](crate::HandlerDedup::handler_succeeded))
//! need no round trip.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

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
/// cache.remove(&["receipt-1".to_owned()]);
/// assert_eq!(cache.succeeded("evt-1", "welcome"), None);
/// ```
#[derive(Debug, Default)]
pub struct DedupCache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    succeeded: HashMap<String, HashSet<String>>,
    event_of_receipt: HashMap<String, String>,
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

    /// Forgets settled deliveries (acknowledged, failed or handed back).
    pub fn remove(&self, receipts: &[String]) {
        let mut state = self.lock();
        for receipt in receipts {
            if let Some(event_id) = state.event_of_receipt.remove(receipt) {
                state.succeeded.remove(&event_id);
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
