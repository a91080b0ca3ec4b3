//! The leases this consumer holds: ranges of the log claimed under a
//! fencing token, with which of their events are still pending and how
//! many are out with the bus. One lock of their own.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use tokio::time::Instant;

use super::receipts::{Completions, Pairs};
use crate::backend::{Pos, Run};

/// A lease this consumer holds.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) token: i64,
    pub(crate) total: usize,
    pub(crate) deliveries: i32,
    /// Rows not yet acknowledged.
    pub(crate) pending: HashSet<i64>,
    /// Every event of the lease, in log order.
    pub(crate) rows: Vec<Pos>,
    /// How many rows are handed out and not yet settled (approximately:
    /// one counter per lease instead of a map entry per event)…
    pub(crate) out_count: usize,
    /// …and since when some have been, continuously.
    pub(crate) out_since: Option<Instant>,
}

/// What settling receipts of held leases found.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    /// Receipts settled, per lease.
    pub(crate) per_lease: HashMap<(i64, i64), usize>,
    /// Leases all of whose events are now settled.
    pub(crate) complete: Pairs,
    /// Receipts of leases this consumer no longer holds.
    pub(crate) stale: usize,
}

/// The held leases, by id.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    held: Mutex<HashMap<i64, Held>>,
}

impl Leases {
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Held>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn insert(&self, id: i64, held: Held) {
        self.lock().insert(id, held);
    }

    pub(crate) fn remove(&self, id: i64) {
        self.lock().remove(&id);
    }

    /// `(id, token)` of every held lease.
    pub(crate) fn pairs(&self) -> Pairs {
        self.lock()
            .iter()
            .map(|(id, held)| (*id, held.token))
            .collect()
    }

    /// Counts a buffered event as handed out; false when its lease is no
    /// longer held (or the event is already settled).
    pub(crate) fn mark_out(&self, lease: i64, token: i64, row: i64, now: Instant) -> bool {
        match self.lock().get_mut(&lease) {
            Some(held) if held.token == token && held.pending.contains(&row) => {
                if held.out_count == 0 {
                    held.out_since = Some(now);
                }
                held.out_count += 1;
                true
            }
            _ => false,
        }
    }

    /// Marks events of held leases as settled; `completions` tells a
    /// repeated settlement from a stale one.
    pub(crate) fn settle(&self, parsed: &[(i64, i64, i64)], completions: &Completions) -> Settled {
        let mut settled = Settled::default();
        let mut leases = self.lock();
        for &(lease, token, row) in parsed {
            match leases.get_mut(&lease) {
                Some(held) if held.token == token => {
                    held.pending.remove(&row);
                    held.out_count = held.out_count.saturating_sub(1);
                    if held.out_count == 0 {
                        held.out_since = None;
                    }
                    *settled.per_lease.entry((lease, token)).or_default() += 1;
                }
                _ if completions.has_lease(lease, token) => {}
                _ => settled.stale += 1,
            }
        }
        for &(lease, token) in settled.per_lease.keys() {
            if leases
                .get(&lease)
                .is_some_and(|held| held.token == token && held.pending.is_empty())
            {
                settled.complete.push((lease, token));
            }
        }
        settled
    }

    /// Drops the leases of `settled.complete` once the database completed
    /// those of `done`; returns how many receipts were stale after all
    /// (their lease expired and was taken over before it was completed).
    pub(crate) fn completed(
        &self,
        settled: &Settled,
        done: &HashSet<i64>,
        completions: &Completions,
    ) -> usize {
        let mut stale = 0;
        let mut leases = self.lock();
        for &(lease, token) in &settled.complete {
            if leases.get(&lease).is_some_and(|held| held.token == token) {
                leases.remove(&lease);
            }
            if done.contains(&lease) {
                completions.lease(lease, token);
            } else {
                stale += settled.per_lease.get(&(lease, token)).copied().unwrap_or(0);
            }
        }
        stale
    }

    /// The position and delivery count of a row of a held lease.
    pub(crate) fn row(&self, lease: i64, token: i64, row: i64) -> Option<(Pos, i32)> {
        let leases = self.lock();
        let held = leases.get(&lease).filter(|h| h.token == token)?;
        let pos = held.rows.iter().find(|pos| pos.id == row)?;
        Some((*pos, held.deliveries))
    }

    /// The runs of `rows` still pending in a held lease (empty when it is
    /// not held).
    pub(crate) fn pending_runs(&self, lease: i64, token: i64, rows: &HashSet<i64>) -> Vec<Run> {
        let leases = self.lock();
        let Some(held) = leases.get(&lease).filter(|h| h.token == token) else {
            return Vec::new();
        };
        runs_of(&held.rows, |pos| {
            rows.contains(&pos.id) && held.pending.contains(&pos.id)
        })
    }

    /// Events of held leases already acknowledged.
    pub(crate) fn acked(&self) -> u64 {
        self.lock()
            .values()
            .map(|held| (held.total - held.pending.len()) as u64)
            .sum()
    }

    /// The held leases of `wanted` to extend: those whose events have not
    /// been out continuously for `horizon` (a stuck or abandoned delivery
    /// then goes to another consumer).
    pub(crate) fn to_extend(&self, wanted: &HashSet<i64>, horizon: std::time::Duration) -> Pairs {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(id, _)| wanted.contains(id))
            .filter(|(_, held)| {
                held.out_since
                    .is_none_or(|since| now.duration_since(since) < horizon)
            })
            .map(|(id, held)| (*id, held.token))
            .collect()
    }
}

/// Maximal runs of consecutive rows (in log order) that `take` selects.
fn runs_of(rows: &[Pos], take: impl Fn(&Pos) -> bool) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut open = false;
    for pos in rows {
        if !take(pos) {
            open = false;
            continue;
        }
        match runs.last_mut() {
            Some(run) if open => {
                run.hi = *pos;
                run.events += 1;
            }
            _ => {
                runs.push(Run {
                    lo: *pos,
                    hi: *pos,
                    events: 1,
                });
                open = true;
            }
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_maximal_and_in_log_order() {
        let rows: Vec<Pos> = (1..=6).map(|id| Pos { tx: 0, id }).collect();
        let runs = runs_of(&rows, |pos| pos.id != 3);
        assert_eq!(
            runs.iter()
                .map(|r| (r.lo.id, r.hi.id, r.events))
                .collect::<Vec<_>>(),
            [(1, 2, 2), (4, 6, 3)]
        );
    }
}
