//! The errors of one emission on their way to its reader, or to the log once
//! the reader is gone.
//!
//! A lock-free handshake between the pushers (listeners) and the reader (the
//! caller's `Emission`) decides who logs an error nobody will read: a pusher
//! sets `ERRORED` and the dropped reader sets `ABANDONED`, each with a
//! read-modify-write of the same atomic that returns what was there before.
//! Read-modify-writes of one atomic are totally ordered, so the later of the
//! two sees the other's bit and logs: no pushed error is lost. Errors are
//! drained under the lock, so none is logged twice. Model-checked with loom
//! (`RUSTFLAGS="--cfg soiree_loom" cargo test -p soiree --lib loom`); a
//! SeqCst store-then-load pair on two flags is also correct, but loom models
//! SeqCst accesses as AcqRel and cannot check it.

use std::collections::VecDeque;

#[cfg(not(all(test, soiree_loom)))]
use std::sync::atomic::{AtomicU8, Ordering};
#[cfg(not(all(test, soiree_loom)))]
use std::sync::{Mutex, MutexGuard};

#[cfg(all(test, soiree_loom))]
use loom::sync::atomic::{AtomicU8, Ordering};
#[cfg(all(test, soiree_loom))]
use loom::sync::{Mutex, MutexGuard};

/// Unread errors, with the flags of the push/abandon handshake.
pub(crate) struct UnreadErrors<T> {
    errors: Mutex<VecDeque<T>>,
    /// `ERRORED` once an error was pushed: until then (most emissions, for
    /// good) reading the errors takes no lock. `ABANDONED` once nobody reads
    /// the errors any more.
    flags: AtomicU8,
}

const ERRORED: u8 = 1;
const ABANDONED: u8 = 2;

impl<T> UnreadErrors<T> {
    /// `abandoned`: nobody will ever read them (a detached emission).
    pub(crate) fn new(abandoned: bool) -> Self {
        Self {
            errors: Mutex::new(VecDeque::new()),
            flags: AtomicU8::new(if abandoned { ABANDONED } else { 0 }),
        }
    }

    /// Adds an error; the first one reserves room for `reserve` errors.
    /// Returns true when the reader is gone: the caller must then log the
    /// errors of [`drain`](Self::drain) (false: the caller wakes the reader).
    pub(crate) fn push(&self, error: T, reserve: usize) -> bool {
        {
            let mut errors = self.lock();
            if errors.capacity() == 0 {
                errors.reserve(reserve);
            }
            errors.push_back(error);
        }
        // Either the reader's drop comes later and sees `ERRORED` (and logs
        // the error), or it came earlier and this sees `ABANDONED`.
        self.flags.fetch_or(ERRORED, Ordering::AcqRel) & ABANDONED != 0
    }

    /// Marks the reader gone and hands the errors it left unread to `log`.
    /// Errors pushed afterwards are the pusher's to log.
    pub(crate) fn mark_abandoned(&self, log: impl FnMut(T)) {
        if self.flags.fetch_or(ABANDONED, Ordering::AcqRel) & ERRORED != 0 {
            self.lock().drain(..).for_each(log);
        }
    }

    /// Removes every unread error and hands it to `log`, taking the lock
    /// only once there were errors. Drained in place (under the lock): the
    /// queue keeps its room for the next error of a detached emission.
    pub(crate) fn drain(&self, log: impl FnMut(T)) {
        if !self.has_errors() {
            return;
        }
        self.lock().drain(..).for_each(log);
    }

    /// The next unread error, taking the lock only once there were errors.
    pub(crate) fn pop(&self) -> Option<T> {
        if !self.has_errors() {
            return None;
        }
        self.lock().pop_front()
    }

    /// Reports whether no error is left to read.
    pub(crate) fn is_empty(&self) -> bool {
        !self.has_errors() || self.lock().is_empty()
    }

    /// Reports whether an error was ever pushed. Seen false, no error was
    /// pushed before whatever the caller synchronised with (a `finished`
    /// read with `Acquire`).
    pub(crate) fn has_errors(&self) -> bool {
        self.flags.load(Ordering::Acquire) & ERRORED != 0
    }

    /// Reports whether the reader is gone, ordered with the handshake.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.flags.load(Ordering::Acquire) & ABANDONED != 0
    }

    /// Reports whether the reader is gone, as a hint only (whether to wake
    /// it): a stale answer costs one needless wake.
    pub(crate) fn is_abandoned_hint(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & ABANDONED != 0
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        self.errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(all(test, soiree_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;

    /// Each error logged by a pusher (push said "log") or by the dropped
    /// reader, plus each error the reader popped, is every pushed error
    /// exactly once, and nothing is left stranded in the queue.
    fn check_once(pushed: &[u32], mut seen: Vec<u32>, unread: &UnreadErrors<u32>) {
        seen.sort_unstable();
        let mut want = pushed.to_vec();
        want.sort_unstable();
        assert_eq!(seen, want, "an error was lost or logged twice");
        assert!(unread.lock().is_empty(), "an error was stranded unlogged");
    }

    /// Two pushers race a reader that pops once and then is dropped.
    #[test]
    fn loom_every_error_is_read_or_logged_once() {
        loom::model(|| {
            let unread = Arc::new(UnreadErrors::new(false));
            let pushers: Vec<_> = [1_u32, 2]
                .into_iter()
                .map(|error| {
                    let unread = Arc::clone(&unread);
                    loom::thread::spawn(move || {
                        let mut logged = Vec::new();
                        if unread.push(error, 2) {
                            unread.drain(|error| logged.push(error));
                        }
                        logged
                    })
                })
                .collect();
            let mut seen: Vec<u32> = unread.pop().into_iter().collect();
            unread.mark_abandoned(|error| seen.push(error));
            for pusher in pushers {
                seen.extend(pusher.join().unwrap());
            }
            check_once(&[1, 2], seen, &unread);
        });
    }

    /// A detached emission (abandoned from the start): every push logs.
    #[test]
    fn loom_detached_errors_are_logged_once() {
        loom::model(|| {
            let unread = Arc::new(UnreadErrors::new(true));
            let pusher = {
                let unread = Arc::clone(&unread);
                loom::thread::spawn(move || {
                    assert!(unread.push(1_u32, 1), "a detached push must log");
                    let mut logged = Vec::new();
                    unread.drain(|error| logged.push(error));
                    logged
                })
            };
            assert!(unread.push(2, 1), "a detached push must log");
            let mut seen = Vec::new();
            unread.drain(|error| seen.push(error));
            seen.extend(pusher.join().unwrap());
            check_once(&[1, 2], seen, &unread);
        });
    }

    /// A reader that saw `finished` (Acquire), set after the pushes, reads
    /// every error without waiting.
    #[test]
    fn loom_finished_reader_sees_every_error() {
        loom::model(|| {
            let unread = Arc::new(UnreadErrors::new(false));
            let finished = Arc::new(AtomicBool::new(false));
            let job = {
                let (unread, finished) = (Arc::clone(&unread), Arc::clone(&finished));
                loom::thread::spawn(move || {
                    assert!(!unread.push(1_u32, 2), "nobody dropped the reader");
                    assert!(!unread.push(2, 2), "nobody dropped the reader");
                    finished.store(true, Ordering::Release);
                })
            };
            if finished.load(Ordering::Acquire) {
                assert!(!unread.is_empty(), "a finished emission hid its errors");
                assert_eq!(unread.pop(), Some(1));
                assert_eq!(unread.pop(), Some(2));
                assert_eq!(unread.pop(), None);
                assert!(unread.is_empty());
            }
            job.join().unwrap();
        });
    }
}
