//! Observability: each attempt runs in a `soiree.listener` span, and is
//! counted (and timed, when asked) in the listener's metrics.

use std::future::Future;

use tracing::Instrument;

use super::Failure;
use crate::metrics::ListenerCounters;
use crate::{Event, ListenerId, Snooze};

/// Runs `call` in a `soiree.listener` span (child of the event context's
/// span, with the topic, listener id and attempt). Without any tracing
/// dispatcher set there is no span to make or enter, and `call` runs bare.
pub(super) async fn observe<F: Future>(
    event: &Event,
    listener_id: &ListenerId,
    attempt: u32,
    call: F,
) -> F::Output {
    let span = tracing::info_span!(
        parent: event.context().span(),
        "soiree.listener",
        topic = event.topic(),
        listener_id = listener_id.as_str(),
        attempt,
    );
    call.instrument(span).await
}

/// Counts one call's outcome in the listener's metrics (a snooze under
/// `snoozed`, not `error`), and its duration
/// when listener timing is on (`started` is then the call's start).
pub(super) fn count(
    counters: &ListenerCounters,
    started: Option<std::time::Instant>,
    outcome: &Result<(), Failure>,
) {
    let counter = match outcome {
        Ok(()) => &counters.ok,
        // A snooze is the listener's "later", not a failure.
        Err(Failure::Error(source)) if source.is::<Snooze>() => &counters.snoozed,
        Err(Failure::Error(_) | Failure::TimedOut(_)) => &counters.error,
        Err(Failure::Panic(_)) => &counters.panic,
    };
    counter.inc();
    if let (Some(histogram), Some(started)) = (&counters.duration, started) {
        histogram.observe(started.elapsed().as_secs_f64());
    }
}
