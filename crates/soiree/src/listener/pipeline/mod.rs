//! Running one listener: a pipeline of small steps, one file each.
//!
//! ```text
//! retry            the policy: attempts per the bus's RetryPolicy, and the wait between them
//! snooze           a listener's Snooze: wait, then the same attempt again (not counted),
//!                  or a long one on a queue delivery: left to the store (EventQueue::defer)
//! └─ record        saves each attempt's StoredResult (with a store)
//!    └─ observe    the `soiree.listener` span (with a tracing subscriber)
//!       └─ catch_panic   the listener's call, panics caught
//! ```
//!
//! As in tower's retry, the policy decides and a loop ([`run_listener`])
//! applies it. The loop composes the steps itself and skips the ones not in
//! use: each nested future layer costs a setup, a poll and a teardown per
//! call, which is most of what a no-op listener costs. With no store, no
//! subscriber and no retries a successful call allocates nothing of its own.
//!
//! The pipeline sees the bus only through the job's [`ListenerJob`] and the
//! bus's [`PipelineHandle`] (store, retry policy, timeout, panic handler,
//! shutdown), built once per bus.

mod catch_panic;
mod handle;
mod observe;
mod record;
mod retry;
mod snooze;

use std::sync::Arc;
use std::time::Instant;

use super::ListenerJob;
use crate::{BoxError, Error, EventContext};

use catch_panic::{catch_panic, report_panic};
pub(crate) use handle::PipelineHandle;
use observe::{count, observe};
use record::record;
use retry::{Attempts, wait_to_retry};
use snooze::{Snoozes, in_store, snoozed};

/// How one attempt failed.
enum Failure {
    /// The listener returned an error.
    Error(BoxError),
    /// The listener panicked, with this message.
    Panic(String),
    /// The listener ran past the bus's listener timeout and was dropped.
    TimedOut(std::time::Duration),
}

/// Runs listener `index` of the job's route until it succeeds, panics, or
/// uses up its attempts; returns its final error.
pub(crate) async fn run_listener(
    job: &Arc<dyn ListenerJob>,
    index: usize,
    event_id: Option<&str>,
) -> Option<Error> {
    let pipeline = job.pipeline();
    let listener = job.listener(index);
    let event = job.event();
    let mut attempts = Attempts::new(&pipeline.retry);
    let mut snoozes = Snoozes::default();
    loop {
        let attempt = attempts.number();
        let ctx = EventContext::new(Arc::clone(job), index, attempt);
        let call = catch_panic(move || listener.listener.call(ctx));
        let started = listener.counters.duration.as_ref().map(|_| Instant::now());
        let outcome = match pipeline.listener_timeout {
            None if !tracing::dispatcher::has_been_set() => call.await,
            None => observe(event, &listener.id, attempt, call).await,
            // Boxed with the timer: only buses with a timeout pay for it.
            Some(limit) => {
                Box::pin(async {
                    let call = tokio::time::timeout(limit, call);
                    let outcome = if tracing::dispatcher::has_been_set() {
                        observe(event, &listener.id, attempt, call).await
                    } else {
                        call.await
                    };
                    outcome.unwrap_or(Err(Failure::TimedOut(limit)))
                })
                .await
            }
        };
        count(&listener.counters, started, &outcome);
        if pipeline.store.is_some() {
            record(&**job, &listener.id, event_id, attempt, &outcome).await;
        }
        // A long snooze of a first attempt is the store's, when the job's
        // queue can keep it: the worker is free meanwhile. The attempt is
        // not over: it runs again, as attempt 1, on the next delivery.
        let snooze = snoozed(&outcome);
        if let Some(delay) = snooze
            && in_store(attempt, delay)
            && job.defer(delay)
        {
            tracing::debug!(attempt, ?delay, "listener snoozed: deferred in the store");
            return None;
        }
        // A snooze waits and runs the same attempt again; past the limit,
        // or when the wait is cut short, it is the listener's final error.
        if let Some(delay) = snooze
            && snoozes.allow()
            && Box::pin(wait_to_retry(delay, event.context(), &pipeline.shutdown)).await
        {
            tracing::debug!(attempt, ?delay, "listener snoozed");
            continue;
        }
        let error = match outcome {
            Ok(()) => return None,
            Err(Failure::Error(source)) => Error::Listener {
                listener_id: listener.id.clone(),
                topic: event.topic().to_owned(),
                source,
            },
            Err(Failure::TimedOut(after)) => Error::TimedOut {
                listener_id: listener.id.clone(),
                topic: event.topic().to_owned(),
                after,
            },
            Err(Failure::Panic(message)) => {
                report_panic(pipeline, &listener.id, event.topic(), &message);
                Error::Panicked {
                    listener_id: listener.id.clone(),
                    message,
                }
            }
        };
        if snooze.is_some() {
            return Some(error);
        }
        let Some(delay) = attempts.retry_after(&error, event.context()) else {
            return Some(error);
        };
        listener.counters.retried.inc();
        tracing::debug!(%error, attempt, ?delay, "retrying listener");
        // Boxed: the wait is large and rare; inline it would grow (and be
        // copied with) every listener run's future.
        if !Box::pin(wait_to_retry(delay, event.context(), &pipeline.shutdown)).await {
            return Some(error);
        }
    }
}
