//! Parking: a listener run whose limit has no room leaves its worker and
//! waits off the pool, then comes back to the pool holding its permit.
//!
//! Why park rather than wait on the worker: a worker waiting on one
//! listener's limit would hold up every other event (with `max_concurrent(1)`
//! and a backlog, every worker would soon wait on that one listener), and
//! the listeners after it in the same event. A parked run waits in a small
//! task of its own, holding only a place in the bus's waiting room
//! ([`EventBusBuilder::max_parked`](crate::EventBusBuilder::max_parked)),
//! and its event's other listeners run at once. A parked delivery also
//! gives back its place among the consumer's deliveries in flight, so the
//! consumer goes on taking other events from the queue; its lease is kept
//! while it waits.
//!
//! The emission (or delivery) ends when its last parked run ends: its
//! stream ends then, and a delivery is acknowledged then. When the waiting
//! room is full, a run waits for its limit on its worker instead (a bound
//! on memory: the room is the most runs waiting off the pool).
//!
//! A parked run waits until the limit has room, the emit's context ends
//! (the run is reported as [`Error::Cancelled`]) or the bus closes (also
//! [`Error::Cancelled`], and a delivery is handed back to the queue, to be
//! delivered again; listeners that succeeded are skipped then by a store
//! that records successes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::dispatch::{Dispatcher, Job, Work, report, settle};
use super::{BusInner, EmissionState};
use crate::Error;
use crate::listener::{LimitPermit, ListenerJob, Try, run_listener};
use crate::pool::Queued;

/// The default of [`EventBusBuilder::max_parked`](crate::EventBusBuilder::max_parked).
pub(crate) const DEFAULT_MAX_PARKED: usize = 4096;

/// Parked runs of one emission, back on the pool: the first holds `permit`.
pub(crate) struct Resume {
    job: Arc<dyn ListenerJob>,
    ending: Arc<Ending>,
    indices: Vec<usize>,
    permit: LimitPermit,
}

/// Ends an emission whose runs were parked, once the last of them ends.
struct Ending {
    state: Arc<EmissionState>,
    /// A parked run was given up because the bus closed.
    unrun: AtomicBool,
}

impl Drop for Ending {
    fn drop(&mut self) {
        settle(&self.state, self.unrun.load(Ordering::Acquire));
        self.state.finish();
    }
}

/// Parks the runs `indices` (in route order) of an emission whose other
/// listeners have run.
pub(crate) async fn park(
    bus: &Arc<BusInner>,
    state: Arc<EmissionState>,
    job: Arc<dyn ListenerJob>,
    indices: Vec<usize>,
) {
    let ending = Arc::new(Ending {
        state,
        unrun: AtomicBool::new(false),
    });
    wait_and_resume(bus, job, ending, indices).await;
}

async fn wait_and_resume(
    bus: &Arc<BusInner>,
    job: Arc<dyn ListenerJob>,
    ending: Arc<Ending>,
    indices: Vec<usize>,
) {
    let Ok(place) = Arc::clone(&bus.parking).try_acquire_owned() else {
        // The waiting room is full: wait here, on the worker.
        if let Some(permit) = wait(bus, &job, &ending, indices[0]).await {
            let resume = Resume {
                job,
                ending,
                indices,
                permit,
            };
            Box::pin(resume_runs(bus, resume)).await;
        } else {
            give_up(bus, &job, &ending, &indices[1..]);
        }
        return;
    };
    // Off the consumer's count while it waits: other deliveries go on.
    if let Work::Deliver(delivered) = &ending.state.work {
        drop(
            delivered
                .permit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
    }
    // Counted in the pool with its emission, so that `wait_for_idle` and
    // `close` wait for it as for the emission.
    let slot = ending.state.slot;
    bus.pool.enter_in(slot);
    let bus = Arc::clone(bus);
    drop(tokio::spawn(async move {
        let Some(permit) = wait(&bus, &job, &ending, indices[0]).await else {
            give_up(&bus, &job, &ending, &indices[1..]);
            bus.pool.cancel(slot, None);
            return;
        };
        drop(place);
        let queued = Queued {
            job: Job::Resume(Box::new(Resume {
                job,
                ending,
                indices,
                permit,
            })),
            slot,
        };
        let pushed = bus.pool.push(queued, || Dispatcher(Arc::clone(&bus))).await;
        if let Err((_, Queued { job, .. })) = pushed {
            if let Job::Resume(resume) = job {
                resume.ending.unrun.store(true, Ordering::Release);
            }
            bus.pool.cancel(slot, None);
        }
    }));
}

/// Waits for room in listener `index`'s limits; `None` when the emit's
/// context ended or the bus closed first (reported).
async fn wait(
    bus: &BusInner,
    job: &Arc<dyn ListenerJob>,
    ending: &Ending,
    index: usize,
) -> Option<LimitPermit> {
    let listener = job.listener(index);
    let limiter = listener.limiter.as_ref()?;
    let event = job.event();
    let closed = tokio::select! {
        permit = limiter.acquire(event) => return Some(permit),
        () = event.context().done() => false,
        () = bus.pipeline.shutdown.cancelled() => true,
    };
    if closed {
        ending.unrun.store(true, Ordering::Release);
    }
    report(
        bus,
        &ending.state,
        Error::Cancelled {
            listener_id: listener.id.clone(),
        },
    );
    None
}

/// Reports the parked runs `rest` not run.
fn give_up(bus: &BusInner, job: &Arc<dyn ListenerJob>, ending: &Ending, rest: &[usize]) {
    for &index in rest {
        report(
            bus,
            &ending.state,
            Error::Cancelled {
                listener_id: job.listener(index).id.clone(),
            },
        );
    }
}

/// Runs parked runs on a worker: the first with its permit, the others if
/// their limits have room now; parks those again that still wait.
pub(crate) async fn resume(bus: &Arc<BusInner>, resume: Resume) {
    resume_runs(bus, resume).await;
}

async fn resume_runs(bus: &Arc<BusInner>, resume: Resume) {
    let Resume {
        job,
        ending,
        indices,
        permit,
    } = resume;
    let event_id = bus.store.as_ref().and_then(|_| job.event().id());
    let mut again = Vec::new();
    let mut permit = Some(permit);
    for index in indices {
        // The first run's permit: dropped if that listener is gone.
        let held = permit.take();
        let listener = job.listener(index);
        if listener.is_removed() {
            continue;
        }
        let event = job.event();
        if event.context().is_done() {
            report(
                bus,
                &ending.state,
                Error::Cancelled {
                    listener_id: listener.id.clone(),
                },
            );
            continue;
        }
        let _permit = match held {
            Some(permit) => permit,
            None => match listener.limiter.as_ref() {
                None => LimitPermit::default(),
                Some(limiter) => match limiter.try_acquire(event).await {
                    Try::Acquired(permit) => permit,
                    Try::Busy(_) => {
                        again.push(index);
                        continue;
                    }
                },
            },
        };
        if let Some(err) = run_listener(&job, index, event_id.as_deref()).await {
            report(bus, &ending.state, err);
        }
    }
    if !again.is_empty() {
        Box::pin(wait_and_resume(bus, job, ending, again)).await;
    }
}
