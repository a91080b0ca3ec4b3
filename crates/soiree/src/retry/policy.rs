//! How many times a failing listener runs.

use super::Backoff;
use crate::{Error, Permanent, Result};

/// How many attempts a failing listener gets, and the [`Backoff`] between
/// them. Listener errors are retried, except [`Permanent`] ones; panics are
/// not (a panic is a bug, and running the same code again rarely helps).
///
/// The default makes one attempt: no retries.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use soiree::{Backoff, EventBus, RetryPolicy};
///
/// let retry = RetryPolicy::attempts(3)
///     .unwrap()
///     .with_backoff(Backoff::constant(Duration::from_millis(5)));
/// assert_eq!(retry.max_attempts(), 3);
/// let bus = EventBus::builder().retry(retry).build().unwrap();
/// # drop(bus);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::never()
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            backoff: Backoff::default(),
        }
    }

    /// `max_attempts` attempts in all (the first run included), with the
    /// default exponential backoff.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for zero attempts.
    pub fn attempts(max_attempts: u32) -> Result<Self> {
        if max_attempts == 0 {
            return Err(Error::InvalidConfig(
                "a retry policy needs at least one attempt".into(),
            ));
        }
        Ok(Self {
            max_attempts,
            backoff: Backoff::default(),
        })
    }

    /// Replaces the backoff.
    #[must_use]
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The backoff between attempts.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// Whether attempt `attempt`, failed with `error`, is followed by another:
    /// while attempts remain, for a listener's error that is not
    /// [`Permanent`] (not for a panic).
    pub(crate) fn retries(&self, attempt: u32, error: &Error) -> bool {
        attempt < self.max_attempts
            && matches!(error, Error::Listener { source, .. } if !source.is::<Permanent>())
    }
}
