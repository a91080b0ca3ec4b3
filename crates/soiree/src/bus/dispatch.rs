//! Running one emission's listeners, in order, with retries and panic isolation.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::park::Resume;
use super::{BusInner, EmissionState};
use crate::listener::{
    ListenerEntry, ListenerJob, PipelineHandle, Try, panic_message, run_listener,
};
use crate::pool::Handler;
use crate::topic::SharedRoute;
use crate::{Error, Event, EventBus, ListenerId};

/// What a job does with its emission.
pub(crate) enum Work {
    /// Run the listeners here (after persisting, with a store).
    Dispatch(SharedRoute<ListenerEntry>),
    /// Append to the store's queue; the consumers dispatch it.
    Enqueue,
    /// Run the listeners of a delivery from the queue, then acknowledge it
    /// (boxed: every emission's state holds a `Work`).
    Deliver(Box<Delivered>),
}

/// A delivery from a queue store, with what acknowledging it needs.
pub(crate) struct Delivered {
    pub(crate) route: SharedRoute<ListenerEntry>,
    pub(crate) receipt: String,
    /// How many times the event has been delivered, this time included.
    pub(crate) delivery_count: u32,
    /// Whether the queue's `fail` dead-letters this delivery if it fails
    /// (then logged once, as a dead letter, by [`run`]).
    pub(crate) dead_letters: bool,
    pub(crate) acks: mpsc::UnboundedSender<Settled>,
    /// Whether the queue keeps snoozes ([`EventQueue::defers`](crate::EventQueue::defers)).
    pub(crate) defers: bool,
    /// The longest snooze left to the store by a listener of this
    /// delivery: when the delivery is due again, and the snooze's delay.
    pub(crate) deferred: std::sync::Mutex<Option<(SystemTime, Duration)>>,
    /// Held until the delivery's job ends (or its parked runs wait off the
    /// consumer's count): one of the consumer's in-flight slots.
    pub(crate) permit: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
}

impl Delivered {
    /// When a snooze left to the store makes this delivery due again.
    fn deferred(&self) -> Option<(SystemTime, Duration)> {
        *self
            .deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How a delivery ended, for the consumer's acknowledger: acknowledged,
/// handed to the queue's `fail` with its first error, or to its `defer`.
#[derive(Debug)]
pub(crate) struct Settled {
    pub(crate) receipt: String,
    pub(crate) failure: Option<String>,
    /// Not run to the end (the bus closed): hand it back to the queue.
    pub(crate) release: bool,
    /// A listener snoozed in the store (and none failed): due again then,
    /// with the snooze as text.
    pub(crate) defer: Option<(SystemTime, String)>,
}

/// One job's dispatch: the bus, the emission and its route, shared by the
/// job's listener contexts. Allocated by whoever runs the job, so that its
/// refcount is written by one thread only, whatever the number of listeners.
struct Dispatch {
    core: Arc<BusInner>,
    emission: Arc<EmissionState>,
    route: SharedRoute<ListenerEntry>,
}

/// The listener layer's view of a job: the bus's pipeline handle, the
/// event, the route, the error handler, and the bus for `EventContext::bus`.
impl ListenerJob for Dispatch {
    fn pipeline(&self) -> &PipelineHandle {
        &self.core.pipeline
    }

    fn event(&self) -> &Event {
        &self.emission.event
    }

    fn listener(&self, index: usize) -> &ListenerEntry {
        &self.route.listeners[index]
    }

    fn report(&self, error: Error) {
        report(&self.core, &self.emission, error);
    }

    fn bus(&self) -> EventBus {
        EventBus::from_inner(Arc::clone(&self.core))
    }

    fn receipt(&self) -> Option<&str> {
        match &self.emission.work {
            Work::Deliver(delivered) => Some(&delivered.receipt),
            Work::Dispatch(_) | Work::Enqueue => None,
        }
    }

    fn defer(&self, delay: Duration) -> bool {
        let Work::Deliver(delivered) = &self.emission.work else {
            return false;
        };
        // A failure already settles the delivery as a failure: the snooze
        // waits here then, as it always did.
        if !delivered.defers || self.emission.first_error().is_some() {
            return false;
        }
        let Some(until) = crate::schedule::clock::now().checked_add(delay) else {
            return false;
        };
        let mut deferred = delivered
            .deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Several snoozes: the longest, so that none runs early.
        if deferred.is_none_or(|(due, _)| due < until) {
            *deferred = Some((until, delay));
        }
        true
    }

    fn settles_after(&self, index: usize) -> bool {
        // Listeners of a job run one after another (`dispatch`): those
        // after `index` have not run, and those before it either succeeded
        // or reported an error already. An error swallowed by the error
        // handler does not count, as at the end of `run`; a snooze left to
        // the store does (the delivery is deferred, not acknowledged).
        matches!(&self.emission.work, Work::Deliver(delivered) if delivered.deferred().is_none())
            && self.emission.first_error().is_none()
            && self
                .route
                .listeners
                .get(index + 1..)
                .is_some_and(|later| later.iter().all(|listener| listener.is_removed()))
    }
}

/// The pool's job for the bus: one emission, or the parked listener runs
/// of one (see [`park`](super::park)).
pub(crate) enum Job {
    Emission(Arc<EmissionState>),
    Resume(Box<Resume>),
}

/// Runs the bus's jobs on its pool's workers.
pub(crate) struct Dispatcher(pub(crate) Arc<BusInner>);

impl Handler<Job> for Dispatcher {
    fn claim(&self, job: &Job) -> bool {
        match job {
            // A task awaiting the emission from inside a job may have taken it.
            Job::Emission(state) => state.claim(),
            Job::Resume(_) => true,
        }
    }

    async fn run(&self, job: Job) {
        match job {
            Job::Emission(state) => run(&self.0, state).await,
            Job::Resume(resume) => Box::pin(super::park::resume(&self.0, *resume)).await,
        }
    }
}

/// Ends the emission when the job ends, even by a panic out of a user's error
/// or panic handler, so that the caller's stream never waits forever —
/// unless some of its listener runs were parked: the last of those ends it.
struct FinishOnDrop<'a>(&'a EmissionState, bool);

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.finish();
        }
    }
}

/// Runs one claimed emission's listeners (or a delivery's, then acknowledges it).
pub(crate) async fn run(bus: &Arc<BusInner>, state: Arc<EmissionState>) {
    let mut finish = FinishOnDrop(&state, true);
    let route = match &state.work {
        Work::Dispatch(route) => Arc::clone(route),
        Work::Deliver(delivered) => Arc::clone(&delivered.route),
        Work::Enqueue => return,
    };
    let listeners = route.listeners.len();
    let job: Arc<dyn ListenerJob> = Arc::new(Dispatch {
        core: Arc::clone(bus),
        emission: Arc::clone(&state),
        route,
    });
    let parked = dispatch(bus, &state, &job, listeners).await;
    if !parked.is_empty() {
        finish.1 = false;
        super::park::park(bus, Arc::clone(&state), job, parked).await;
        return;
    }
    settle(&state, false);
}

/// Acknowledges a delivery (or hands it to the queue's `fail` with its
/// first error, or to its `defer` when a listener snoozed there); `unrun`: a listener did not run (the bus closed while it
/// waited on a limit), so the delivery is handed back to be delivered again.
pub(crate) fn settle(state: &EmissionState, unrun: bool) {
    if let Work::Deliver(delivered) = &state.work {
        // The consumer's acker is gone only when the bus is closing; the
        // entry then stays pending and is delivered again.
        let failure = state.first_error();
        if unrun {
            let _ = delivered.acks.send(Settled {
                receipt: delivered.receipt.clone(),
                failure: None,
                release: true,
                defer: None,
            });
            return;
        }
        if let Some((reason, listener)) = failure
            && delivered.dead_letters
        {
            log_dead_letter(&state.event, delivered, reason, listener.as_ref());
        }
        // A failure wins over a snooze: the delivery is failed as before.
        let defer = match failure {
            None => delivered
                .deferred()
                .map(|(until, delay)| (until, crate::Snooze::after(delay).to_string())),
            Some(_) => None,
        };
        let _ = delivered.acks.send(Settled {
            receipt: delivered.receipt.clone(),
            failure: failure.map(|(reason, _)| reason.clone()),
            release: false,
            defer,
        });
    }
}

/// The one warning of a delivery that ends in a dead letter: what failed,
/// how often, why, and how to replay it.
fn log_dead_letter(
    event: &crate::Event,
    delivered: &Delivered,
    reason: &str,
    listener: Option<&crate::ListenerId>,
) {
    let event_id = event.id();
    let event_id = event_id.as_deref().unwrap_or("");
    tracing::warn!(
        event_id,
        topic = event.topic(),
        listener = listener.map_or("", |id| id.as_str()),
        attempts = delivered.delivery_count,
        reason,
        replay = %format_args!("soiree dead-letters replay --store <url> --event-id {event_id:?}"),
        "delivery failed and is dead-lettered; replay it once the listener is fixed"
    );
}

/// Runs the `listeners` of `job`'s route, in order; returns those whose
/// limits had no room (to park), in order.
async fn dispatch(
    bus: &BusInner,
    state: &EmissionState,
    job: &Arc<dyn ListenerJob>,
    listeners: usize,
) -> Vec<usize> {
    let event = &state.event;
    let store = bus.store.as_deref();
    let dedup = store.and_then(|store| store.dedup());
    // Only stores need the id; skip the property lookup on the in-memory path.
    let event_id = store.and_then(|_| event.id());
    let mut parked = Vec::new();
    for index in 0..listeners {
        let listener = job.listener(index);
        if listener.is_removed() {
            continue;
        }
        if event.is_aborted() {
            break;
        }
        if event.context().is_done() {
            report(
                bus,
                state,
                Error::Cancelled {
                    listener_id: listener.id.clone(),
                },
            );
            continue;
        }
        if let (Some(dedup), Some(event_id)) = (dedup, &event_id) {
            match dedup
                .handler_succeeded(event_id, listener.id.as_str())
                .await
            {
                Ok(true) => continue,
                Ok(false) => {}
                // At least once: when in doubt, run the listener again.
                Err(err) => tracing::warn!(%err, event_id, "handler dedup lookup failed"),
            }
        }
        // A limit with no room: the run is parked, the others go on.
        let _permit = match &listener.limiter {
            None => None,
            Some(limiter) => match limiter.try_acquire(event).await {
                Try::Acquired(permit) => Some(permit),
                Try::Busy(_) => {
                    parked.push(index);
                    continue;
                }
            },
        };
        if let Some(err) = run_listener(job, index, event_id.as_deref()).await {
            report(bus, state, err);
        }
    }
    parked
}

/// Passes an error through the bus's error handler to the emission.
pub(crate) fn report(bus: &BusInner, state: &EmissionState, error: Error) {
    if let Some(error) = handle_error(bus, &state.event, error) {
        state.push_error(error, bus.error_buffer);
    }
}

/// Fails an emission with its own error (a refusal, or a store or
/// serialization error of persisting it): the error handler is shown it,
/// but cannot hide it — the emission reports `error` itself.
pub(crate) fn fail_own(bus: &BusInner, state: &EmissionState, error: Error) {
    show_handler(bus, &state.event, &error);
    state.push_error(error, bus.error_buffer);
}

/// Shows the error handler an emission's own failure; its answer is not
/// used (the emission reports the failure whatever the handler returns).
pub(crate) fn show_handler(bus: &BusInner, event: &Event, error: &Error) {
    let Some(handler) = &bus.error_handler else {
        return;
    };
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| handler(event, error.duplicate()))) {
        tracing::error!(
            %error,
            panic = panic_message(&*panic),
            "the error handler panicked on an emit's own failure"
        );
    }
}

/// The error the error handler makes of `error` (`None`: swallowed).
///
/// A panicking handler loses nothing: the error comes back as
/// [`Error::Panicked`] naming the handler, with the original error's text.
pub(crate) fn handle_error(bus: &BusInner, event: &Event, error: Error) -> Option<Error> {
    let Some(handler) = &bus.error_handler else {
        return Some(error);
    };
    let text = error.to_string();
    match catch_unwind(AssertUnwindSafe(|| handler(event, error))) {
        Ok(error) => error,
        Err(panic) => Some(Error::Panicked {
            listener_id: ListenerId::new("error_handler"),
            message: format!(
                "the error handler panicked ({}) on: {text}",
                panic_message(&*panic)
            ),
        }),
    }
}
