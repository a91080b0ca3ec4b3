//! The handler successes of the events this process holds, fetched with the
//! deliveries so that the bus's per-listener dedup lookups need no round trip.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

/// Succeeded handler ids by event id, for deliveries not yet acknowledged.
#[derive(Debug, Default)]
pub(crate) struct DedupCache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    succeeded: HashMap<String, HashSet<String>>,
    event_of_receipt: HashMap<String, String>,
}

impl DedupCache {
    /// Remembers what the database said for a delivery's event.
    pub(crate) fn insert(&self, receipt: &str, event_id: &str, handlers: Vec<String>) {
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

    /// [`insert`](Self::insert) for a batch `(receipt, event id, handlers)`,
    /// under one lock.
    pub(crate) fn insert_many(&self, entries: Vec<(String, String, Vec<String>)>) {
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

    /// `Some(answer)` when the event is held here, `None` to ask the database.
    pub(crate) fn succeeded(&self, event_id: &str, handler_id: &str) -> Option<bool> {
        Some(self.lock().succeeded.get(event_id)?.contains(handler_id))
    }

    /// Records a success of this process, for the event's later listeners.
    pub(crate) fn record(&self, event_id: &str, handler_id: &str) {
        if let Some(handlers) = self.lock().succeeded.get_mut(event_id) {
            handlers.insert(handler_id.to_owned());
        }
    }

    /// Forgets acknowledged deliveries.
    pub(crate) fn remove(&self, receipts: &[String]) {
        let mut state = self.lock();
        for receipt in receipts {
            if let Some(event_id) = state.event_of_receipt.remove(receipt) {
                state.succeeded.remove(&event_id);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
