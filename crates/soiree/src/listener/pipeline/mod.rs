//! Running one listener: a pipeline of small steps, composed like tower's
//! layers, each wrapping the next:
//!
//! ```text
//! retry            attempts per the bus's RetryPolicy, waiting between them
//! └─ record        saves each attempt's StoredResult (with a store)
//!    └─ observe    the `soiree.listener` span (with a tracing subscriber)
//!       └─ catch_panic   the listener's call, panics caught
//! ```
//!
//! The steps are generic async functions, not boxed services: with no store,
//! no subscriber and no retries, a successful call costs what the bare call
//! costs, with no allocation of its own.

mod catch_panic;
mod observe;
mod record;
mod retry;

use std::sync::Arc;

use crate::bus::Dispatch;
use crate::{BoxError, Error, EventContext};

use catch_panic::{catch_panic, report_panic};
use observe::observe;
use record::record;
use retry::retry;

/// How one attempt failed.
enum Failure {
    /// The listener returned an error.
    Error(BoxError),
    /// The listener panicked, with this message.
    Panic(String),
}

/// Runs listener `index` of the dispatch's route until it succeeds, panics,
/// or uses up its attempts; returns its final error.
pub(crate) async fn run_listener(
    dispatch: &Arc<Dispatch>,
    index: usize,
    event_id: Option<&str>,
) -> Option<Error> {
    let bus = dispatch.bus();
    retry(
        &bus.retry,
        dispatch.emission.event.context(),
        &bus.consumer.shutdown,
        |attempt| run_attempt(dispatch, index, event_id, attempt),
    )
    .await
}

/// One attempt: the call, observed, recorded, and its failure made an [`Error`].
async fn run_attempt(
    dispatch: &Arc<Dispatch>,
    index: usize,
    event_id: Option<&str>,
    attempt: u32,
) -> Result<(), Error> {
    let listener = &dispatch.route.listeners[index];
    let event = &dispatch.emission.event;
    let ctx = EventContext::new(Arc::clone(dispatch), index, attempt);
    let outcome = observe(
        event,
        &listener.id,
        attempt,
        catch_panic(move || listener.listener.call(ctx)),
    )
    .await;
    record(dispatch, &listener.id, event_id, attempt, &outcome).await;
    outcome.map_err(|failure| match failure {
        Failure::Error(source) => Error::Listener {
            listener_id: listener.id.clone(),
            topic: event.topic().to_owned(),
            source,
        },
        Failure::Panic(message) => {
            report_panic(dispatch.bus(), &listener.id, event.topic(), &message);
            Error::Panicked {
                listener_id: listener.id.clone(),
                message,
            }
        }
    })
}
