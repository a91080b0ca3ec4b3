//! Snoozes: a listener that returned [`Snooze`] runs again after its delay,
//! with the same attempt number: not a failure, not an attempt.

use std::time::Duration;

use super::Failure;
use crate::Snooze;

/// The snooze's delay, when the attempt snoozed.
pub(super) fn snoozed(outcome: &Result<(), Failure>) -> Option<Duration> {
    match outcome {
        Err(Failure::Error(source)) => source.downcast_ref::<Snooze>().map(Snooze::delay),
        _ => None,
    }
}

/// Whether a snooze of `delay` on attempt `attempt` is long enough to be
/// left to the store (a retry's snooze stays: the store does not keep the
/// listener's in-process attempt count).
pub(super) fn in_store(attempt: u32, delay: Duration) -> bool {
    attempt == 1 && delay > Snooze::IN_STORE_AFTER
}

/// Counts one listener run's snoozes against [`Snooze::MAX_PER_RUN`].
#[derive(Default)]
pub(super) struct Snoozes(u32);

impl Snoozes {
    /// Counts a snooze; false once past the limit (the snooze then fails).
    pub(super) fn allow(&mut self) -> bool {
        self.0 += 1;
        self.0 <= Snooze::MAX_PER_RUN
    }
}
