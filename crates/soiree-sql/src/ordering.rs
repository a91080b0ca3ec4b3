//! Per-key ordering (the builders' `ordered_by_key`): which buffered
//! deliveries with a key may be handed to the bus.
//!
//! An event with key `k` at log position `p` is handed out only when no
//! earlier unsettled event with key `k` exists anywhere in the group:
//!
//! - in this consumer (tracked here, in memory): no delivery of `k` is out
//!   (handed out and not yet acknowledged, failed or released), and no
//!   buffered entry of `k` at a position before `p` still waits;
//! - elsewhere (checked in the database by [`Backend::key_blockers`]): no
//!   lease of the group other than this consumer's holds an event of `k`
//!   before `p`, and no row of the retry table (other than those this
//!   consumer claimed) holds one. The check runs when a lease or a batch of
//!   retry rows is loaded; entries it holds back are checked again every
//!   poll interval, and soon after this consumer settles something.
//!
//! Once an entry passed the database check, only this consumer can put a
//! new blocker before it: a failed delivery moved to (or left in) the retry
//! table, a lease it lost or handed back. Each of these marks the later
//! buffered entries of the key as held back until checked again, and bumps
//! an epoch so that a check that was running meanwhile is not trusted
//! (other consumers can only create blockers after their own positions,
//! since new leases start past the group's cursor; replayed dead letters are
//! the exception, and are not ordered before what was already handed out).
//!
//! No deadlock: an entry only ever waits for events at earlier positions of
//! the log (or, in this consumer, for a delivery already out, which settles
//! without waiting for anything). The earliest unsettled event of a key thus
//! waits for nothing of its key: it is in a lease some consumer holds (and
//! hands out), in an expired lease (reclaimed whatever the buffer holds), or
//! in the retry table (claimed when due, whatever the buffer holds). So each
//! key progresses, and a chain of waits always ends.
//!
//! [`Backend::key_blockers`]: crate::backend::Backend::key_blockers

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::Pos;

/// The ordering facts of a buffered entry with a key.
#[derive(Debug, Clone)]
pub(crate) struct Keyed {
    pub(crate) key: Arc<str>,
    pub(crate) pos: Pos,
    /// Held back by the database check (an earlier event of the key in
    /// another consumer's lease or in the retry table), or not checked
    /// since a blocker may have appeared.
    pub(crate) blocked: bool,
}

/// What this consumer holds of one key.
#[derive(Debug, Default)]
struct PerKey {
    /// Positions of the buffered entries (a multiset: a count per position).
    buffered: BTreeMap<Pos, u32>,
    /// Deliveries handed out and not yet settled.
    out: u32,
}

/// A database check to run: the keys of the held-back entries and a bound
/// past all their positions.
#[derive(Debug)]
pub(crate) struct Check {
    pub(crate) keys: Vec<String>,
    pub(crate) before: Pos,
    pub(crate) epoch: u64,
}

/// Per key, the earliest blocking position found by a check.
pub(crate) type Blockers = HashMap<String, Pos>;

/// The keys of this consumer's buffered and handed-out deliveries. `R`
/// names a handed-out delivery (its receipt).
#[derive(Debug)]
pub(crate) struct KeyOrder<R> {
    keys: HashMap<Arc<str>, PerKey>,
    out: HashMap<R, (Arc<str>, Pos)>,
    /// Bumped whenever a blocker may have appeared that a running check did
    /// not see.
    epoch: u64,
    /// Something settled or changed here: check held-back entries soon.
    recheck_soon: bool,
    last_check: Option<Instant>,
}

impl<R> Default for KeyOrder<R> {
    fn default() -> Self {
        Self {
            keys: HashMap::new(),
            out: HashMap::new(),
            epoch: 0,
            recheck_soon: false,
            last_check: None,
        }
    }
}

impl<R: Hash + Eq + Copy> KeyOrder<R> {
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Registers a buffered entry, held back when the check found an
    /// earlier event of its key (or when a blocker may have appeared since
    /// the check began, at `epoch`).
    pub(crate) fn admit(
        &mut self,
        key: &str,
        pos: Pos,
        checked: Option<&(u64, Blockers)>,
    ) -> Keyed {
        let blocked = match checked {
            Some((epoch, blockers)) if *epoch == self.epoch => {
                blockers.get(key).is_some_and(|first| *first < pos)
            }
            Some(_) => {
                self.recheck_soon = true;
                true
            }
            None => false,
        };
        let key: Arc<str> = match self.keys.get_key_value(key) {
            Some((known, _)) => Arc::clone(known),
            None => Arc::from(key),
        };
        let per = self.keys.entry(Arc::clone(&key)).or_default();
        *per.buffered.entry(pos).or_default() += 1;
        Keyed { key, pos, blocked }
    }

    /// Whether a buffered entry may be handed out now.
    pub(crate) fn ready(&self, entry: &Keyed) -> bool {
        if entry.blocked {
            return false;
        }
        self.keys.get(&entry.key).is_none_or(|per| {
            per.out == 0
                && per
                    .buffered
                    .keys()
                    .next()
                    .is_none_or(|first| *first >= entry.pos)
        })
    }

    /// A buffered entry leaves the buffer without being handed out.
    pub(crate) fn unbuffer(&mut self, entry: &Keyed) {
        if let Some(per) = self.keys.get_mut(&entry.key) {
            if let Some(count) = per.buffered.get_mut(&entry.pos) {
                *count -= 1;
                if *count == 0 {
                    per.buffered.remove(&entry.pos);
                }
            }
            if per.buffered.is_empty() && per.out == 0 {
                self.keys.remove(&entry.key);
            }
        }
    }

    /// A buffered entry is handed out under `receipt`.
    pub(crate) fn hand_out(&mut self, receipt: R, entry: Keyed) {
        self.unbuffer(&entry);
        self.keys.entry(Arc::clone(&entry.key)).or_default().out += 1;
        self.out.insert(receipt, (entry.key, entry.pos));
    }

    /// The key and position of a delivery still out.
    pub(crate) fn out_of(&self, receipt: &R) -> Option<(Arc<str>, Pos)> {
        self.out.get(receipt).cloned()
    }

    /// A delivery is settled (or given up): its key may move on. Returns
    /// whether it had a key.
    pub(crate) fn settle(&mut self, receipt: &R) -> bool {
        let Some((key, _)) = self.out.remove(receipt) else {
            return false;
        };
        if let Some(per) = self.keys.get_mut(&key) {
            per.out = per.out.saturating_sub(1);
            if per.out == 0 && per.buffered.is_empty() {
                self.keys.remove(&key);
            }
        }
        self.recheck_soon = true;
        true
    }

    /// Forgets the deliveries out that `lost` selects (their lease went to
    /// another consumer); returns their keys and positions.
    pub(crate) fn drop_out(&mut self, lost: impl Fn(&R) -> bool) -> Vec<(Arc<str>, Pos)> {
        let receipts: Vec<R> = self.out.keys().filter(|r| lost(r)).copied().collect();
        let mut dropped = Vec::with_capacity(receipts.len());
        for receipt in receipts {
            if let Some(found) = self.out.get(&receipt).cloned() {
                self.settle(&receipt);
                dropped.push(found);
            }
        }
        dropped
    }

    /// A blocker of `key` may have appeared at `after` (a delivery moved to
    /// the retry table, a lease lost or handed back): the buffered entries
    /// of the key past it wait for a new check.
    pub(crate) fn hold_back<'a>(
        &mut self,
        entries: impl Iterator<Item = &'a mut Keyed>,
        key: &str,
        after: Pos,
    ) {
        self.epoch += 1;
        self.recheck_soon = true;
        for entry in entries {
            if &*entry.key == key && entry.pos > after {
                entry.blocked = true;
            }
        }
    }

    /// Something this consumer did may have removed or added blockers.
    pub(crate) fn changed(&mut self) {
        self.epoch += 1;
        self.recheck_soon = true;
    }

    /// The check of the held-back entries, when one is due: soon after a
    /// change here, else at most every `interval`.
    pub(crate) fn due_check<'a>(
        &mut self,
        entries: impl Iterator<Item = &'a Keyed>,
        now: Instant,
        interval: Duration,
    ) -> Option<Check> {
        let due = self.recheck_soon
            || self
                .last_check
                .is_none_or(|last| now.duration_since(last) >= interval);
        if !due {
            return None;
        }
        let mut keys: HashSet<&str> = HashSet::new();
        let mut before: Option<Pos> = None;
        for entry in entries.filter(|entry| entry.blocked) {
            keys.insert(&*entry.key);
            before = Some(before.map_or(entry.pos, |b| b.max(entry.pos)));
        }
        let before = before?;
        let mut keys: Vec<String> = keys.into_iter().map(str::to_owned).collect();
        keys.sort_unstable();
        self.recheck_soon = false;
        self.last_check = Some(now);
        Some(Check {
            keys,
            before,
            epoch: self.epoch,
        })
    }

    /// Applies a check's result to the held-back entries (unless a blocker
    /// may have appeared since it began); returns whether any was released.
    pub(crate) fn apply<'a>(
        &mut self,
        check: &Check,
        blockers: &Blockers,
        entries: impl Iterator<Item = &'a mut Keyed>,
    ) -> bool {
        if check.epoch != self.epoch {
            self.recheck_soon = true;
            return false;
        }
        let checked: HashSet<&str> = check.keys.iter().map(String::as_str).collect();
        let mut released = false;
        for entry in entries.filter(|entry| {
            entry.blocked && entry.pos <= check.before && checked.contains(&*entry.key)
        }) {
            if blockers
                .get(&*entry.key)
                .is_none_or(|first| *first >= entry.pos)
            {
                entry.blocked = false;
                released = true;
            }
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(60);

    fn pos(id: i64) -> Pos {
        Pos { tx: 0, id }
    }

    /// The check of `entry` due now, with checks at most every [`INTERVAL`].
    fn due_now(order: &mut KeyOrder<u32>, entry: &Keyed) -> Option<Check> {
        order.due_check(std::iter::once(entry), Instant::now(), INTERVAL)
    }

    #[test]
    fn one_delivery_per_key_in_log_order() {
        let mut order: KeyOrder<u32> = KeyOrder::default();
        let a1 = order.admit("a", pos(1), None);
        let b2 = order.admit("b", pos(2), None);
        let a3 = order.admit("a", pos(3), None);
        assert!(order.ready(&a1) && order.ready(&b2));
        assert!(!order.ready(&a3), "a1 waits before it");
        order.hand_out(1, a1);
        assert!(!order.ready(&a3), "a1 is out");
        assert!(order.ready(&b2), "other keys are not held back");
        assert!(order.settle(&1));
        assert!(order.ready(&a3));
        assert!(!order.settle(&1), "settled once");
    }

    #[test]
    fn a_blocker_found_in_the_database_holds_back_later_entries_only() {
        let mut order: KeyOrder<u32> = KeyOrder::default();
        let blockers: Blockers = [("a".to_owned(), pos(5))].into();
        let checked = (order.epoch(), blockers);
        let a4 = order.admit("a", pos(4), Some(&checked));
        let a6 = order.admit("a", pos(6), Some(&checked));
        assert!(order.ready(&a4) && !a4.blocked);
        assert!(a6.blocked && !order.ready(&a6));
        // The blocker settled elsewhere: the next check releases it, but
        // a4 still comes first.
        let mut entries = vec![a4, a6];
        let check = order
            .due_check(entries.iter(), Instant::now(), INTERVAL)
            .expect("due: never checked");
        assert_eq!(check.keys, ["a"]);
        assert_eq!(check.before, pos(6));
        assert!(order.apply(&check, &Blockers::new(), entries.iter_mut()));
        assert!(!order.ready(&entries[1]));
        let a4 = entries.remove(0);
        order.hand_out(7, a4);
        order.settle(&7);
        assert!(order.ready(&entries[0]));
    }

    #[test]
    fn a_check_running_while_a_blocker_appears_is_not_trusted() {
        let mut order: KeyOrder<u32> = KeyOrder::default();
        let checked = (order.epoch(), Blockers::new());
        let a1 = order.admit("a", pos(1), None);
        order.hand_out(1, a1);
        // a1 failed and moved to the retry table while a2's lease was checked.
        let (key, at) = order.out_of(&1).unwrap();
        order.hold_back(std::iter::empty(), &key, at);
        order.settle(&1);
        let mut a2 = order.admit("a", pos(2), Some(&checked));
        assert!(a2.blocked, "checked before the blocker appeared");
        let check = due_now(&mut order, &a2).unwrap();
        order.changed();
        assert!(!order.apply(&check, &Blockers::new(), std::iter::once(&mut a2)));
        assert!(a2.blocked);
        let check = due_now(&mut order, &a2).unwrap();
        let blockers: Blockers = [("a".to_owned(), pos(1))].into();
        assert!(!order.apply(&check, &blockers, std::iter::once(&mut a2)));
        assert!(a2.blocked, "the retry row comes first");
        assert!(
            due_now(&mut order, &a2).is_none(),
            "not again before the interval"
        );
    }
}
