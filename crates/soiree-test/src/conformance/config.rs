//! Settings of a conformance run.

use std::time::Duration;

/// Settings of the conformance suite: what to expect of the store and how
/// long to wait for it.
///
/// # Examples
///
/// A queue store that delivers unacknowledged events again after two
/// seconds:
///
/// ```
/// use std::time::Duration;
/// use soiree_test::conformance::Conformance;
///
/// let config = Conformance {
///     redelivery_after: Some(Duration::from_secs(2)),
///     ..Conformance::default()
/// };
/// assert_eq!(config.bus_events, 50);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conformance {
    /// When set, a queue delivery that is not acknowledged is expected to be
    /// delivered again (with a delivery count of 2) after about this long.
    /// Stores redeliver differently (visibility timeouts, idle claims), so the
    /// check is opt-in; `None` skips it.
    pub redelivery_after: Option<Duration>,
    /// How long a dequeue on an empty queue is asked to wait.
    pub empty_wait: Duration,
    /// The upper bound of every wait in a check (an emission, the bus going
    /// idle, events arriving); exceeding it fails the check.
    pub timeout: Duration,
    /// How many events the bus end-to-end check emits.
    pub bus_events: usize,
}

impl Default for Conformance {
    fn default() -> Self {
        Self {
            redelivery_after: None,
            empty_wait: Duration::from_millis(100),
            timeout: Duration::from_secs(20),
            bus_events: 50,
        }
    }
}
