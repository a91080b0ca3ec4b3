//! Tracing: each attempt runs in a `soiree.listener` span.

use std::future::Future;

use tracing::Instrument;

use crate::{Event, ListenerId};

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
