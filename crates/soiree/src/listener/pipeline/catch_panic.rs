//! Panic isolation: a panicking listener becomes a failed attempt, and the
//! bus's panic handler hears of it.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};

use futures::FutureExt;

use super::{Failure, PipelineHandle};
use crate::listener::panic_message;
use crate::{BoxError, ListenerId, ListenerPanic};

/// Runs `call` and its future, catching a panic in either: `call` runs inside
/// the caught future, so that a panic in a listener's synchronous part (before
/// it returns a future) is caught too.
pub(super) async fn catch_panic<F, Fut>(call: F) -> Result<(), Failure>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    // `call()` runs inside the caught future, so that a panic in the
    // listener's synchronous part (before it returns a future) is caught too.
    match AssertUnwindSafe(async move { call().await })
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(Failure::Error(source)),
        Err(panic) => Err(Failure::Panic(panic_message(&*panic))),
    }
}

/// Tells the bus's panic handler, if any, of a listener's panic. A panicking
/// handler is caught and logged.
pub(super) fn report_panic(
    pipeline: &PipelineHandle,
    listener_id: &ListenerId,
    topic: &str,
    message: &str,
) {
    let Some(handler) = &pipeline.panic_handler else {
        return;
    };
    let report = ListenerPanic {
        listener_id: listener_id.clone(),
        topic: topic.to_owned(),
        message: message.to_owned(),
    };
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| handler(&report))) {
        tracing::error!(panic = panic_message(&*panic), "the panic handler panicked");
    }
}
