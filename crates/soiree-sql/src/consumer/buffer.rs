//! The buffer of claimed deliveries not yet handed to the bus (read-ahead),
//! in log order, with the key order of its entries: both change together,
//! under one lock of their own (the ordered operations are in
//! `key_order.rs`).

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use soiree::Delivery;
use tokio::time::Instant;

use super::receipts::Receipt;
use crate::backend::Pos;
use crate::ordering::{Blockers, KeyOrder, Keyed};

/// A claimed delivery waiting in the buffer.
#[derive(Debug)]
pub(crate) struct Buffered {
    pub(crate) source: Receipt,
    pub(crate) delivery: Delivery,
    /// Its key and position, with `ordered_by_key` and a key.
    pub(crate) order: Option<Keyed>,
}

/// A delivery to buffer: what names it, the delivery, and its key and
/// position when it is ordered by key.
pub(crate) type Incoming = (Receipt, Delivery, Option<(String, Pos)>);

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) entries: VecDeque<Buffered>,
    /// Keys of buffered and handed-out deliveries (`ordered_by_key` only).
    pub(crate) order: KeyOrder<Receipt>,
}

/// The buffer: filled by claims, emptied by dequeues, hand-backs and lost
/// leases.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    state: Mutex<State>,
}

impl Buffer {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().entries.is_empty()
    }

    /// Appends deliveries in order, admitting their keys against the check
    /// that was run for them (`checked`: its epoch and blockers).
    pub(crate) fn push(
        &self,
        incoming: impl IntoIterator<Item = Incoming>,
        checked: Option<&(u64, Blockers)>,
    ) {
        let mut state = self.lock();
        for (source, delivery, key) in incoming {
            let order = key.map(|(key, pos)| state.order.admit(&key, pos, checked));
            state.entries.push_back(Buffered {
                source,
                delivery,
                order,
            });
        }
    }

    /// Hands out up to `max` deliveries, oldest first (in key order with
    /// `ordered`); `live` marks one out with its lease or retry row and
    /// says whether that is still held (else the entry is dropped).
    pub(crate) fn take(
        &self,
        max: usize,
        ordered: bool,
        mut live: impl FnMut(Receipt, Instant) -> bool,
    ) -> Vec<Delivery> {
        let mut state = self.lock();
        let now = Instant::now();
        let mut out = Vec::new();
        if ordered {
            state.take_in_key_order(max, |source| live(source, now), &mut out);
            return out;
        }
        while out.len() < max {
            let Some(entry) = state.entries.pop_front() else {
                break;
            };
            if live(entry.source, now) {
                out.push(entry.delivery);
            }
        }
        out
    }

    /// Drops the entries of a lease or retry row this consumer lost; with
    /// `ordered_by_key`, the later entries of their keys (and of their
    /// deliveries still out) wait for a new check, since the lost events
    /// are now another consumer's. `unhold` drops the lease or row from
    /// its own part under the buffer's lock, so that no dequeue hands out
    /// (or drops without holding its key back) an entry in between.
    pub(crate) fn forget(&self, gone: impl Fn(&Receipt) -> bool, unhold: impl FnOnce()) {
        let mut state = self.lock();
        unhold();
        let mut lost = Vec::new();
        state.entries.retain_mut(|entry| {
            if !gone(&entry.source) {
                return true;
            }
            lost.extend(entry.order.take());
            false
        });
        for keyed in &lost {
            state.order.unbuffer(keyed);
        }
        let mut lost: Vec<_> = lost
            .into_iter()
            .map(|keyed| (keyed.key, keyed.pos))
            .collect();
        lost.extend(state.order.drop_out(&gone));
        for (key, pos) in lost {
            state.hold_back(&key, pos);
        }
    }

    /// Empties the buffer (to hand its deliveries back): what names each
    /// entry, and its receipt.
    pub(crate) fn drain(&self) -> Vec<(Receipt, String)> {
        let mut state = self.lock();
        let state = &mut *state;
        let mut drained = Vec::with_capacity(state.entries.len());
        for entry in state.entries.drain(..) {
            drained.push((entry.source, entry.delivery.receipt));
            if let Some(keyed) = entry.order {
                state.order.unbuffer(&keyed);
            }
        }
        // The events handed back become leases of their own: blockers
        // that a check running now may not have seen.
        state.order.changed();
        drained
    }

    /// The leases and retry rows that buffered entries belong to.
    pub(crate) fn holders(&self) -> (HashSet<i64>, HashSet<i64>) {
        let (mut leases, mut retries) = (HashSet::new(), HashSet::new());
        for entry in &self.lock().entries {
            match entry.source {
                Receipt::Log { lease, .. } => leases.insert(lease),
                Receipt::Retry { id, .. } => retries.insert(id),
            };
        }
        (leases, retries)
    }
}
