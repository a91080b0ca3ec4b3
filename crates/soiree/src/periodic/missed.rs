//! What a leader does with ticks that passed while no process fired them.

/// What the leader does with the ticks that passed unfired: while no
/// process led (the leader died and its lease had to expire), or while
/// every process was stopped, or while the store was unreachable.
///
/// The leader knows the last tick fired (recorded with the lease, see
/// [`Lease::progress`](crate::Lease::progress)); the ticks after it that
/// are due are the missed ones. A schedule that never fired starts with
/// the next tick: nothing from before it was first started is fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MissedTicks {
    /// Fire the latest missed tick once, late, and skip the ones before
    /// it (tokio's `MissedTickBehavior::Skip`): a job that only needs to
    /// run again, such as a cache sweep.
    #[default]
    Skip,
    /// Fire up to `max` of the latest missed ticks, oldest first, and
    /// skip the ones before them: a job that must run for every tick it
    /// can, such as a report per hour. `max` is at least 1.
    CatchUp {
        /// The most missed ticks fired at once.
        max: u32,
    },
}

impl MissedTicks {
    /// How many missed ticks are fired at most.
    pub(crate) fn max(self) -> u32 {
        match self {
            MissedTicks::Skip => 1,
            MissedTicks::CatchUp { max } => max.max(1),
        }
    }
}
