//! `ordered_by_key`: the buffer's operations that keep each key's events in
//! log order across the group (see `crate::ordering` for the bookkeeping).
//! Entries held back stay in the buffer, in order, until a check of the
//! database finds no earlier event of their key elsewhere.

use std::collections::VecDeque;
use std::time::Duration;

use soiree::Delivery;
use tokio::time::Instant;

use super::buffer::{Buffer, State};
use super::receipts::{Pairs, Receipt};
use crate::backend::Pos;
use crate::ordering::{Blockers, Check};

/// What the buffer says before a fill, with `ordered_by_key`.
pub(crate) enum Before {
    /// An entry is ready to hand out (or drop): look again.
    Ready,
    /// Nothing ready: whether there is room to claim more, and a check of
    /// held-back entries when one is due (with this consumer's leases and
    /// retry rows, which the check leaves out).
    Fill {
        room: bool,
        check: Option<(Check, Pairs, Pairs)>,
    },
}

impl State {
    /// A blocker of `key` may have appeared at `after`: its buffered
    /// entries past it wait for a new check.
    pub(crate) fn hold_back(&mut self, key: &str, after: Pos) {
        self.order.hold_back(
            self.entries
                .iter_mut()
                .filter_map(|entry| entry.order.as_mut()),
            key,
            after,
        );
    }

    /// Scans the buffer in order, hands out what is ready and keeps the
    /// entries held back in place, in order.
    pub(crate) fn take_in_key_order(
        &mut self,
        max: usize,
        mut live: impl FnMut(Receipt) -> bool,
        out: &mut Vec<Delivery>,
    ) {
        let mut kept = VecDeque::new();
        while let Some(mut entry) = self.entries.pop_front() {
            if out.len() >= max {
                kept.push_back(entry);
                break;
            }
            if entry
                .order
                .as_ref()
                .is_some_and(|keyed| !self.order.ready(keyed))
            {
                kept.push_back(entry);
                continue;
            }
            let alive = live(entry.source);
            if let Some(keyed) = entry.order.take() {
                if alive {
                    self.order.hand_out(entry.source, keyed);
                } else {
                    self.order.unbuffer(&keyed);
                }
            }
            if alive {
                out.push(entry.delivery);
            }
        }
        kept.append(&mut self.entries);
        self.entries = kept;
    }
}

impl Buffer {
    /// Whether a dequeue would hand out (or drop) something; else whether
    /// there is room (fewer than `room` entries) and the check of held-back
    /// entries, when due. `own` reads this consumer's leases and retry rows
    /// under the buffer's lock, as the check's epoch is.
    pub(crate) fn before_fill(
        &self,
        room: usize,
        interval: Duration,
        own: impl FnOnce() -> (Pairs, Pairs),
    ) -> Before {
        let mut state = self.lock();
        let state = &mut *state;
        let ready = state.entries.iter().any(|entry| {
            entry
                .order
                .as_ref()
                .is_none_or(|keyed| state.order.ready(keyed))
        });
        if ready {
            return Before::Ready;
        }
        let room = state.entries.len() < room;
        let check = state
            .order
            .due_check(
                state
                    .entries
                    .iter()
                    .filter_map(|entry| entry.order.as_ref()),
                Instant::now(),
                interval,
            )
            .map(|check| {
                let (leases, retries) = own();
                (check, leases, retries)
            });
        Before::Fill { room, check }
    }

    /// The epoch a key check begins at, with this consumer's leases and
    /// retry rows (read by `own` under the buffer's lock).
    pub(crate) fn epoch(&self, own: impl FnOnce() -> (Pairs, Pairs)) -> (u64, Pairs, Pairs) {
        let state = self.lock();
        let (leases, retries) = own();
        (state.order.epoch(), leases, retries)
    }

    /// Applies a check of held-back entries; whether any was released.
    pub(crate) fn apply(&self, check: &Check, blockers: &Blockers) -> bool {
        let mut state = self.lock();
        let state = &mut *state;
        state.order.apply(
            check,
            blockers,
            state
                .entries
                .iter_mut()
                .filter_map(|entry| entry.order.as_mut()),
        )
    }

    /// Deliveries are settled (their keys move on), after `moved` of them
    /// went to (or stayed in) the retry table, where they hold back the
    /// later buffered entries of their keys. Whether any had a key (then
    /// consumers waiting for a key should look again).
    pub(crate) fn keys_settled(&self, receipts: &[Receipt], moved: &[Receipt]) -> bool {
        let mut state = self.lock();
        for receipt in moved {
            if let Some((key, pos)) = state.order.out_of(receipt) {
                state.hold_back(&key, pos);
            }
        }
        let mut any = false;
        for receipt in receipts {
            any |= state.order.settle(receipt);
        }
        any
    }
}
