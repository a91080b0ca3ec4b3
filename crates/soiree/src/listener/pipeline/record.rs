//! Results: each attempt's outcome, saved to the bus's store.

use super::Failure;
use crate::listener::ListenerJob;
use crate::{ListenerId, StoredResult};

/// Saves an attempt's [`StoredResult`] when the bus has a store; a failure to
/// save is reported to the emission.
pub(super) async fn record(
    job: &dyn ListenerJob,
    listener_id: &ListenerId,
    event_id: Option<&str>,
    attempt: u32,
    outcome: &Result<(), Failure>,
) {
    let Some(store) = &job.pipeline().store else {
        return;
    };
    let error = match outcome {
        Ok(()) => None,
        Err(Failure::Error(source)) => Some(source.to_string()),
        Err(Failure::Panic(message)) => Some(format!("panicked: {message}")),
        Err(Failure::TimedOut(after)) => Some(format!("timed out after {after:?}")),
    };
    let result = StoredResult::new(
        job.event().topic(),
        event_id.unwrap_or_default(),
        listener_id.as_str(),
        attempt,
        error,
    );
    if let Err(err) = store.save_handler_result(&result).await {
        job.report(err);
    }
}
