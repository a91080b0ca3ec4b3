//! Retries: attempts per the bus's [`RetryPolicy`], with its backoff between
//! them.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::{Context, Error, RetryPolicy};

/// Runs `attempt` (given its number, from 1) until it succeeds or `policy`
/// gives up on its error; returns the last error.
///
/// Waiting to retry ends early, with the last error, when `context` is done
/// or `shutdown` is cancelled (the bus closes).
pub(super) async fn retry<F, Fut>(
    policy: &RetryPolicy,
    context: &Context,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Option<Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    // Made at the first retry: most listeners never need it.
    let mut delays = None;
    let mut number = 1;
    loop {
        let error = match attempt(number).await {
            Ok(()) => return None,
            Err(error) => error,
        };
        if !policy.retries(number, &error) || context.is_done() {
            return Some(error);
        }
        let delay = delays
            .get_or_insert_with(|| policy.backoff().delays())
            .next()
            .unwrap_or_default();
        tracing::debug!(%error, attempt = number, ?delay, "retrying listener");
        // Boxed: the wait's timer and wake-ups are large, and kept inline
        // they would grow (and be copied with) every listener run's future,
        // though a retry is the rare case.
        if !Box::pin(wait_to_retry(delay, context, shutdown)).await {
            return Some(error);
        }
        number += 1;
    }
}

/// Waits `delay`; false when the context is done or the bus closes first.
async fn wait_to_retry(
    delay: std::time::Duration,
    context: &Context,
    shutdown: &CancellationToken,
) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = context.done() => false,
        () = shutdown.cancelled() => false,
    }
}
