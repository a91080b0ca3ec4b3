//! Waiting for the work submitted before a point in time, not for all work.
//!
//! Jobs are counted in one of two slots, chosen by the parity of an epoch.
//! A waiter moves the epoch on, so that jobs submitted after it go to the
//! other slot, and waits for its slot to drain: under a steady stream of new
//! work it still returns once the jobs that came before it are done.
//!
//! The counting is plain atomics, model-checked with loom
//! (`RUSTFLAGS="--cfg soiree_loom" cargo test -p soiree --lib loom`).

use crossbeam_utils::CachePadded;

#[cfg(not(all(test, soiree_loom)))]
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[cfg(all(test, soiree_loom))]
use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Which of the two counting slots a job was entered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(u8);

impl Slot {
    /// The other slot.
    pub(crate) fn other(self) -> Self {
        Self(self.0 ^ 1)
    }

    /// The slot as a number (0 or 1), to keep in an atomic.
    pub(crate) fn to_bits(self) -> u8 {
        self.0
    }

    /// The slot of [`to_bits`](Self::to_bits).
    pub(crate) fn from_bits(bits: u8) -> Self {
        Self(bits & 1)
    }
}

/// Counts of entered and finished jobs per slot.
///
/// Entered and finished are separate counters on their own cache lines:
/// submitters write one, workers the other.
#[derive(Debug)]
pub(crate) struct IdleCounts {
    epoch: AtomicUsize,
    entered: [CachePadded<AtomicU64>; 2],
    finished: [CachePadded<AtomicU64>; 2],
}

impl Default for IdleCounts {
    fn default() -> Self {
        Self {
            epoch: AtomicUsize::new(0),
            entered: [
                CachePadded::new(AtomicU64::new(0)),
                CachePadded::new(AtomicU64::new(0)),
            ],
            finished: [
                CachePadded::new(AtomicU64::new(0)),
                CachePadded::new(AtomicU64::new(0)),
            ],
        }
    }
}

impl IdleCounts {
    /// Counts a new job in the current epoch's slot.
    pub(crate) fn enter(&self) -> Slot {
        let slot = self.epoch.load(Ordering::SeqCst) & 1;
        self.entered[slot].fetch_add(1, Ordering::SeqCst);
        #[allow(clippy::cast_possible_truncation)]
        Slot(slot as u8)
    }

    /// Counts a new job in `slot`: the continuation of a job of that slot
    /// still running (entered before that job finishes, so the slot never
    /// looks drained between them).
    pub(crate) fn enter_in(&self, slot: Slot) {
        self.entered[usize::from(slot.0)].fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a job of `slot` as finished.
    pub(crate) fn finish(&self, slot: Slot) {
        self.finished[usize::from(slot.0)].fetch_add(1, Ordering::SeqCst);
    }

    /// Moves the epoch on: jobs entered from now on go to the other slot.
    /// Returns the slot of the jobs entered before.
    pub(crate) fn advance(&self) -> Slot {
        let before = self.epoch.fetch_add(1, Ordering::SeqCst) & 1;
        #[allow(clippy::cast_possible_truncation)]
        Slot(before as u8)
    }

    /// The slot the next job goes to.
    pub(crate) fn current(&self) -> Slot {
        #[allow(clippy::cast_possible_truncation)]
        Slot((self.epoch.load(Ordering::SeqCst) & 1) as u8)
    }

    /// Reports whether every job entered in `slot` so far has finished.
    pub(crate) fn drained(&self, slot: Slot) -> bool {
        let slot = usize::from(slot.0);
        // Finished first: both only grow and a job finishes after it enters,
        // so equal counts mean that, when `finished` was read, nothing in the
        // slot was running (a race can only report work, never idleness).
        let finished = self.finished[slot].load(Ordering::SeqCst);
        finished == self.entered[slot].load(Ordering::SeqCst)
    }

    /// Jobs entered and not finished, over both slots.
    pub(crate) fn pending(&self) -> u64 {
        (0..2)
            .map(|slot| {
                let finished = self.finished[slot].load(Ordering::SeqCst);
                self.entered[slot]
                    .load(Ordering::SeqCst)
                    .saturating_sub(finished)
            })
            .sum()
    }
}

#[cfg(all(test, soiree_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;

    /// A job emitted before a waiter's call is never reported drained while
    /// it runs, whatever the interleaving of submitter, worker and waiter.
    #[test]
    fn loom_waiter_sees_earlier_jobs() {
        loom::model(|| {
            let counts = Arc::new(IdleCounts::default());
            let done = Arc::new(AtomicBool::new(false));
            let emitted = Arc::new(AtomicUsize::new(usize::MAX));

            let submitter = {
                let (counts, emitted) = (counts.clone(), emitted.clone());
                loom::thread::spawn(move || {
                    let slot = counts.enter();
                    emitted.store(usize::from(slot.0), Ordering::SeqCst);
                })
            };
            let worker = {
                let (counts, done, emitted) = (counts.clone(), done.clone(), emitted.clone());
                loom::thread::spawn(move || {
                    let slot = emitted.load(Ordering::SeqCst);
                    if slot != usize::MAX {
                        done.store(true, Ordering::SeqCst);
                        #[allow(clippy::cast_possible_truncation)]
                        counts.finish(Slot(slot as u8));
                    }
                })
            };
            // The waiter starts after the emit returned (it saw `emitted`).
            if emitted.load(Ordering::SeqCst) != usize::MAX {
                let other = Slot(counts.current().0 ^ 1);
                if counts.drained(other) {
                    let before = counts.advance();
                    if counts.drained(before) {
                        assert!(done.load(Ordering::SeqCst), "reported idle while a job ran");
                    }
                }
            }
            submitter.join().unwrap();
            worker.join().unwrap();
        });
    }

    /// A parked listener's continuation, entered in its job's slot before
    /// that job finishes, keeps the slot from looking drained until the
    /// continuation has finished too.
    #[test]
    fn loom_a_continuation_keeps_its_slot_busy() {
        loom::model(|| {
            let counts = Arc::new(IdleCounts::default());
            let slot = counts.enter();
            let continued = Arc::new(AtomicBool::new(false));
            let worker = {
                let (counts, continued) = (counts.clone(), continued.clone());
                loom::thread::spawn(move || {
                    counts.enter_in(slot);
                    counts.finish(slot);
                    continued.store(true, Ordering::SeqCst);
                    counts.finish(slot);
                })
            };
            if counts.drained(slot) {
                assert!(
                    continued.load(Ordering::SeqCst),
                    "reported idle while the continuation ran"
                );
            }
            worker.join().unwrap();
            assert!(counts.drained(slot));
        });
    }

    /// Jobs entered after the epoch moved on do not hold up the waiter.
    #[test]
    fn loom_later_jobs_go_to_the_other_slot() {
        loom::model(|| {
            let counts = Arc::new(IdleCounts::default());
            let before = counts.advance();
            let later = {
                let counts = counts.clone();
                loom::thread::spawn(move || counts.enter())
            };
            assert!(counts.drained(before));
            assert_ne!(later.join().unwrap(), before);
        });
    }
}
