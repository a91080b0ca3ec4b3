//! Running one batch: the batch listener's call, panics caught, then each
//! event's outcome handed to the per-event call waiting for it.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::oneshot;

use super::{Batch, BatchOutcome};
use crate::listener::{EventContext, panic_message};
use crate::{BoxError, Permanent, Snooze, permanent};

/// A batch listener, boxed.
pub(super) type BatchFn =
    dyn Fn(Batch) -> BoxFuture<'static, Result<BatchOutcome, BoxError>> + Send + Sync;

/// One event's outcome, as its batch gave it.
pub(super) enum Verdict {
    /// The listener's outcome for the event.
    Handled(Result<(), BoxError>),
    /// The batch panicked, with this message: the event's call panics too,
    /// so that the pipeline counts and reports it as a listener panic.
    Panicked(String),
}

/// An event in a batch, with where its outcome goes.
pub(super) type Waiting = (EventContext, oneshot::Sender<Verdict>);

/// Runs `listener` on the events of `items` whose calls still wait, and
/// hands each its outcome.
pub(super) async fn run_batch(listener: &BatchFn, items: Vec<Waiting>) {
    // A call that stopped waiting (cut by the bus's listener timeout) has
    // already failed: its event is left out rather than handled unseen.
    let (contexts, waiters): (Vec<_>, Vec<_>) =
        items.into_iter().filter(|(_, tx)| !tx.is_closed()).unzip();
    if contexts.is_empty() {
        return;
    }
    // The call runs inside the caught future, so that a panic in the
    // listener's synchronous part is caught too.
    let outcome = AssertUnwindSafe(async { listener(Batch::new(contexts)).await })
        .catch_unwind()
        .await;
    match outcome {
        Ok(Ok(outcome)) => hand_out(outcome, waiters),
        Ok(Err(error)) => {
            for waiter in waiters {
                let _ = waiter.send(Verdict::Handled(Err(copy_error(&error))));
            }
        }
        Err(panic) => {
            let message = panic_message(&*panic);
            for waiter in waiters {
                let _ = waiter.send(Verdict::Panicked(message.clone()));
            }
        }
    }
}

/// Outcome `i` to waiter `i`; a waiter without an outcome fails.
fn hand_out(outcome: BatchOutcome, waiters: Vec<oneshot::Sender<Verdict>>) {
    let (given, expected) = (outcome.outcomes.len(), waiters.len());
    if given > expected {
        tracing::warn!(
            given,
            expected,
            "a batch listener returned more outcomes than its batch had events: the extra ones are ignored"
        );
    }
    let mut outcomes = outcome.outcomes.into_iter();
    for waiter in waiters {
        let verdict = outcomes.next().unwrap_or_else(|| {
            Err(format!(
                "the batch listener returned {given} outcomes for a batch of {expected} events, \
                 none for this one: return one outcome per event of the batch"
            )
            .into())
        });
        let _ = waiter.send(Verdict::Handled(verdict));
    }
}

/// A whole batch's error, for one of its events: a [`Snooze`] stays a
/// snooze and a [`Permanent`] error stays permanent (so that every event
/// is retried, or not, as the one error says); any other error is copied
/// as its text.
fn copy_error(error: &BoxError) -> BoxError {
    if let Some(snooze) = error.downcast_ref::<Snooze>() {
        return Box::new(*snooze);
    }
    let text = error.to_string();
    if error.is::<Permanent>() {
        permanent(text)
    } else {
        text.into()
    }
}
