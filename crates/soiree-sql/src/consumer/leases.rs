//! The leases this consumer holds: ranges of the log claimed under a
//! fencing token, with which of their events are still pending and how
//! many are out with the bus. One lock of their own.
//!
//! The database counts every event of a lease as unacknowledged until the
//! lease is completed (deleted there); the events acknowledged here are
//! taken off that count ([`Leases::acked_view`], [`Leases::acked_since`]).
//! A completion deletes the lease in the database first and drops it here
//! after, so a count read while one runs may or may not hold its events:
//! completions are counted as they begin and end ([`Completing`]), and a
//! count read across one is read again (see `Core::read_less_acked`).

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
    /// Completions of this lease sent to the database and not yet ended.
    pub(crate) completing: u32,
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
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    held: HashMap<i64, Held>,
    /// Completions begun and not yet ended.
    completing: usize,
    /// Completions begun, ever…
    begun: u64,
    /// …and the events of their leases.
    begun_events: u64,
}

/// What this consumer acknowledged in the leases it holds, taken before a
/// count is read from the database.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AckedView {
    /// Events acknowledged in held leases.
    all: u64,
    /// The same, less those of leases being completed.
    not_completing: u64,
    completing: usize,
    begun: u64,
    begun_events: u64,
}

impl Leases {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock(&self) -> MapGuard<'_> {
        MapGuard(self.state())
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

    /// Ends a completion of `pairs` begun with
    /// [`begin_completing`](Self::begin_completing); drops them when
    /// `drop_them`.
    fn end_completing(&self, pairs: &Pairs, drop_them: bool) {
        let mut state = self.state();
        for &(lease, token) in pairs {
            if let Some(held) = state.held.get_mut(&lease).filter(|h| h.token == token) {
                held.completing = held.completing.saturating_sub(1);
                if drop_them {
                    state.held.remove(&lease);
                }
            }
        }
        state.completing = state.completing.saturating_sub(pairs.len());
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

    /// Events of held leases already acknowledged, with how far the
    /// completions have got; read it before the database's count, and
    /// [`acked_since`](Self::acked_since) after.
    pub(crate) fn acked_view(&self) -> AckedView {
        let state = self.state();
        let mut view = AckedView {
            all: 0,
            not_completing: 0,
            completing: state.completing,
            begun: state.begun,
            begun_events: state.begun_events,
        };
        for held in state.held.values() {
            let acked = (held.total - held.pending.len()) as u64;
            view.all += acked;
            if held.completing == 0 {
                view.not_completing += acked;
            }
        }
        view
    }

    /// What to take off a database count read after `before` was taken,
    /// and whether that is exact.
    ///
    /// Exact when no completion ran at `before` nor began since: each one
    /// that ended before then was deleted in the database before `before`
    /// (hence before the count was read) and is in neither; each one that
    /// begins after now is deleted after the count was read and is in both.
    /// Otherwise a lease whose completion overlapped the count may be in the
    /// count but not in `before` (the old `count - acked` read too much: a
    /// lease deleted and dropped in between) or the reverse (too little:
    /// one deleted in the database and not yet dropped here). The inexact
    /// answer leaves out every such lease's events, which can only read too
    /// much: the events of a lease whose completion began since `before`
    /// are fewer than its `total` counted in `begun_events`.
    pub(crate) fn acked_since(&self, before: &AckedView) -> (u64, bool) {
        let state = self.state();
        if before.completing == 0 && state.begun == before.begun {
            return (before.all, true);
        }
        let since = state.begun_events - before.begun_events;
        (before.not_completing.saturating_sub(since), false)
    }

    /// Counts the completion of `pairs` as begun: call it before the
    /// database is asked to complete them, and end it through the returned
    /// guard once they are dropped here (dropping the guard ends it too,
    /// keeping the leases).
    pub(crate) fn begin_completing(&self, pairs: &Pairs) -> Completing<'_> {
        let mut state = self.state();
        let mut events = 0;
        for &(lease, token) in pairs {
            if let Some(held) = state.held.get_mut(&lease).filter(|h| h.token == token) {
                held.completing += 1;
                events += held.total as u64;
            }
        }
        state.completing += pairs.len();
        state.begun += 1;
        state.begun_events += events;
        Completing {
            leases: self,
            pairs: pairs.clone(),
        }
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

/// The held leases' map, behind the lock of [`Leases`].
struct MapGuard<'a>(MutexGuard<'a, State>);

impl std::ops::Deref for MapGuard<'_> {
    type Target = HashMap<i64, Held>;

    fn deref(&self) -> &Self::Target {
        &self.0.held
    }
}

impl std::ops::DerefMut for MapGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0.held
    }
}

/// A completion of leases under way: begun before the database was asked,
/// ended once they are dropped here (or, dropped itself, when the database
/// was not heard from: the leases stay held, as before it began).
#[derive(Debug)]
pub(crate) struct Completing<'a> {
    leases: &'a Leases,
    pairs: Pairs,
}

impl Completing<'_> {
    /// Drops the leases of `settled.complete` once the database completed
    /// those of `done`; returns how many receipts were stale after all
    /// (their lease expired and was taken over before it was completed).
    pub(crate) fn completed(
        mut self,
        settled: &Settled,
        done: &HashSet<i64>,
        completions: &Completions,
    ) -> usize {
        let pairs = std::mem::take(&mut self.pairs);
        self.leases.end_completing(&pairs, true);
        let mut stale = 0;
        for &(lease, token) in &pairs {
            if done.contains(&lease) {
                completions.lease(lease, token);
            } else {
                stale += settled.per_lease.get(&(lease, token)).copied().unwrap_or(0);
            }
        }
        stale
    }
}

impl Drop for Completing<'_> {
    fn drop(&mut self) {
        if !self.pairs.is_empty() {
            self.leases.end_completing(&self.pairs, false);
        }
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

    /// A lease of `rows` (ids), none acknowledged.
    fn held(token: i64, rows: &[i64]) -> Held {
        Held {
            token,
            total: rows.len(),
            deliveries: 1,
            pending: rows.iter().copied().collect(),
            rows: rows.iter().map(|&id| Pos { tx: 0, id }).collect(),
            out_count: 0,
            out_since: None,
            completing: 0,
        }
    }

    /// Leases 1 (rows 1 and 2, both acknowledged) and 2 (row 3, pending):
    /// one event is not acknowledged.
    fn one_lease_settled() -> (Leases, Settled) {
        let leases = Leases::default();
        leases.insert(1, held(7, &[1, 2]));
        leases.insert(2, held(8, &[3]));
        let settled = leases.settle(&[(1, 7, 1), (1, 7, 2)], &Completions::default());
        assert_eq!(settled.complete, [(1, 7)]);
        (leases, settled)
    }

    #[test]
    fn without_completions_the_acknowledged_events_are_taken_off_exactly() {
        let (leases, _settled) = one_lease_settled();
        let before = leases.acked_view();
        // The database counts both leases: 3 events.
        assert_eq!(leases.acked_since(&before), (2, true));
    }

    #[test]
    fn a_completion_under_way_before_the_count_never_reads_too_little() {
        let (leases, settled) = one_lease_settled();
        let completing = leases.begin_completing(&settled.complete);
        let before = leases.acked_view();
        let (acked, exact) = leases.acked_since(&before);
        assert!(!exact);
        // Whether the database deleted lease 1 before its count (1 event)
        // or not (3), the one pending event is counted.
        assert!(1_u64.saturating_sub(acked) >= 1);
        assert!(3_u64.saturating_sub(acked) >= 1);
        completing.completed(&settled, &HashSet::from([1]), &Completions::default());
        let before = leases.acked_view();
        assert_eq!(leases.acked_since(&before), (0, true));
    }

    #[test]
    fn a_completion_begun_after_the_acknowledged_events_were_read_never_reads_too_little() {
        let (leases, settled) = one_lease_settled();
        let before = leases.acked_view();
        let completing = leases.begin_completing(&settled.complete);
        let (acked, exact) = leases.acked_since(&before);
        assert!(!exact);
        assert!(1_u64.saturating_sub(acked) >= 1);
        // Ended (and dropped here) before the check: still not exact.
        completing.completed(&settled, &HashSet::from([1]), &Completions::default());
        let (acked, exact) = leases.acked_since(&before);
        assert!(!exact);
        assert!(1_u64.saturating_sub(acked) >= 1);
    }

    #[test]
    fn a_completion_the_database_did_not_answer_keeps_its_lease() {
        let (leases, settled) = one_lease_settled();
        drop(leases.begin_completing(&settled.complete));
        assert_eq!(leases.pairs().len(), 2);
        let before = leases.acked_view();
        assert_eq!(leases.acked_since(&before), (2, true));
    }

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
