//! The rows of the retry table this consumer claimed and has not settled.
//! One lock of their own.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::receipts::Pairs;

/// A retry-table row this consumer claimed.
#[derive(Debug)]
pub(crate) struct HeldRetry {
    pub(crate) token: i64,
    pub(crate) deliveries: i32,
    /// Since when the bus has it, once handed out.
    pub(crate) out: Option<Instant>,
}

/// The claimed retry rows, by id.
#[derive(Debug, Default)]
pub(crate) struct Retries {
    held: Mutex<HashMap<i64, HeldRetry>>,
}

impl Retries {
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, HeldRetry>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn insert(&self, id: i64, held: HeldRetry) {
        self.lock().insert(id, held);
    }

    pub(crate) fn remove(&self, id: i64) {
        self.lock().remove(&id);
    }

    pub(crate) fn remove_all(&self, pairs: &[(i64, i64)]) {
        let mut held = self.lock();
        for (id, _) in pairs {
            held.remove(id);
        }
    }

    /// `(id, token)` of every claimed row.
    pub(crate) fn pairs(&self) -> Pairs {
        self.lock()
            .iter()
            .map(|(id, held)| (*id, held.token))
            .collect()
    }

    /// Counts a buffered row as handed out; false when it is no longer held.
    pub(crate) fn mark_out(&self, id: i64, token: i64, now: Instant) -> bool {
        match self.lock().get_mut(&id) {
            Some(held) if held.token == token => {
                held.out = Some(now);
                true
            }
            _ => false,
        }
    }

    /// How often a held row was delivered.
    pub(crate) fn deliveries(&self, id: i64, token: i64) -> Option<i32> {
        self.lock()
            .get(&id)
            .filter(|held| held.token == token)
            .map(|held| held.deliveries)
    }

    /// The claimed rows of `wanted` to extend: those not out for `horizon`.
    pub(crate) fn to_extend(&self, wanted: &HashSet<i64>, horizon: Duration) -> Pairs {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(id, _)| wanted.contains(id))
            .filter(|(_, held)| {
                held.out
                    .is_none_or(|since| now.duration_since(since) < horizon)
            })
            .map(|(id, held)| (*id, held.token))
            .collect()
    }
}
