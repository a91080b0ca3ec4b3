//! Retries: attempts per the bus's [`RetryPolicy`], with its backoff between
//! them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{Context, Error, RetryPolicy};

/// The retry policy applied to one listener's run: which attempt this is,
/// and whether (and after how long) a failed one is tried again.
pub(super) struct Attempts<'a> {
    policy: &'a RetryPolicy,
    number: u32,
    /// Made at the first retry: most listeners never need it.
    delays: Option<Box<dyn Iterator<Item = Duration> + Send>>,
}

impl<'a> Attempts<'a> {
    pub(super) fn new(policy: &'a RetryPolicy) -> Self {
        Self {
            policy,
            number: 1,
            delays: None,
        }
    }

    /// The current attempt's number, from 1.
    pub(super) fn number(&self) -> u32 {
        self.number
    }

    /// After the current attempt failed with `error`: the delay before the
    /// next one, or `None` when the policy gives up (attempts used up, a
    /// permanent error or a panic) or the context is done.
    pub(super) fn retry_after(&mut self, error: &Error, context: &Context) -> Option<Duration> {
        if !self.policy.retries(self.number, error) || context.is_done() {
            return None;
        }
        let policy = self.policy;
        let delay = self
            .delays
            .get_or_insert_with(|| policy.backoff().delays())
            .next()
            .unwrap_or_default();
        self.number += 1;
        Some(delay)
    }
}

/// Waits `delay`; false when the context is done or the bus closes first.
pub(super) async fn wait_to_retry(
    delay: Duration,
    context: &Context,
    shutdown: &CancellationToken,
) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = context.done() => false,
        () = shutdown.cancelled() => false,
    }
}
