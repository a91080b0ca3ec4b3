//! The store's own path: events are persisted by a task of their own, never
//! queued behind listener jobs, then handed to the pool (or, with a queue
//! store, left to the consumers).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::dispatch::{Dispatcher, Job, Work, fail_own};
use super::{BusInner, EmissionState};
use crate::pool::Queued;
use crate::{Error, StoredEvent};

/// Store writes in flight at once (stores batch concurrent writes).
const MAX_IN_FLIGHT: usize = 256;

/// Why an event was not accepted for persisting.
pub(crate) enum NotAccepted {
    Full,
    Closed,
}

pub(crate) struct Persister {
    sender: mpsc::Sender<Arc<EmissionState>>,
    receiver: Mutex<Option<mpsc::Receiver<Arc<EmissionState>>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    started: AtomicBool,
    stop: CancellationToken,
    /// Close the pool after the last hand-off (the bus's handles are gone).
    close_pool: AtomicBool,
    /// Events accepted, and events whose persisting ended (either way).
    accepted: AtomicU64,
    done: AtomicU64,
}

impl std::fmt::Debug for Persister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persister")
            .field("unpersisted", &self.unpersisted())
            .finish_non_exhaustive()
    }
}

impl Persister {
    pub(crate) fn new(capacity: usize) -> Self {
        let (sender, receiver) = mpsc::channel(capacity);
        Self {
            sender,
            receiver: Mutex::new(Some(receiver)),
            task: Mutex::new(None),
            started: AtomicBool::new(false),
            stop: CancellationToken::new(),
            close_pool: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    /// Events accepted and not yet persisted (or failed).
    pub(crate) fn unpersisted(&self) -> u64 {
        let done = self.done.load(Ordering::SeqCst);
        self.accepted.load(Ordering::SeqCst).saturating_sub(done)
    }

    /// Accepts an event without waiting.
    pub(crate) fn try_accept(
        &self,
        bus: &Arc<BusInner>,
        state: Arc<EmissionState>,
    ) -> Result<(), NotAccepted> {
        self.start(bus);
        self.accepted.fetch_add(1, Ordering::SeqCst);
        self.sender.try_send(state).map_err(|err| {
            self.done.fetch_add(1, Ordering::SeqCst);
            match err {
                mpsc::error::TrySendError::Full(_) => NotAccepted::Full,
                mpsc::error::TrySendError::Closed(_) => NotAccepted::Closed,
            }
        })
    }

    /// Accepts an event, waiting for room.
    pub(crate) async fn accept(
        &self,
        bus: &Arc<BusInner>,
        state: Arc<EmissionState>,
    ) -> Result<(), NotAccepted> {
        self.start(bus);
        self.accepted.fetch_add(1, Ordering::SeqCst);
        let undo = Undo(&self.done);
        let sent = self.sender.send(state).await;
        match sent {
            Ok(()) => {
                std::mem::forget(undo);
                Ok(())
            }
            Err(mpsc::error::SendError(_)) => Err(NotAccepted::Closed),
        }
    }

    /// Starts the persisting task on the caller's runtime, once.
    fn start(&self, bus: &Arc<BusInner>) {
        if self.started.load(Ordering::Acquire) || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(receiver) = lock(&self.receiver).take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Emitting outside a runtime: refused before this point.
            *lock(&self.receiver) = Some(receiver);
            self.started.store(false, Ordering::Release);
            return;
        };
        // Made before the task runs: a runtime that shuts down before
        // polling it still drops the guard, and the loss is told.
        let unfinished = Unfinished {
            bus: Arc::clone(bus),
            armed: true,
        };
        let stop = self.stop.clone();
        let bus = Arc::clone(bus);
        let task = runtime.spawn(async move {
            run(&bus, receiver, stop).await;
            unfinished.done();
        });
        *lock(&self.task) = Some(task);
    }

    /// Stops accepting, persists every accepted event, and waits for that.
    pub(crate) async fn flush(&self) {
        self.stop.cancel();
        let task = lock(&self.task).take();
        if let Some(task) = task
            && let Err(err) = task.await
        {
            tracing::error!(%err, "the persisting task failed");
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        lock(&self.task)
            .as_ref()
            .is_some_and(|task| !task.is_finished())
    }

    /// Stops accepting; the task persists what was accepted, hands it to
    /// the pool, then closes the pool.
    pub(crate) fn stop_then_close_pool(&self) {
        self.close_pool.store(true, Ordering::SeqCst);
        self.stop.cancel();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Counts an acceptance that did not happen (also when the wait is cancelled).
struct Undo<'a>(&'a AtomicU64);

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Tells of the task's remaining work as lost if the task is dropped (its
/// runtime shut down) before it persisted everything.
struct Unfinished {
    bus: Arc<BusInner>,
    armed: bool,
}

impl Unfinished {
    fn done(mut self) {
        self.armed = false;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let Some(persister) = self.bus.persister.as_ref().filter(|_| self.armed) else {
            return;
        };
        let unpersisted = persister.unpersisted();
        if unpersisted > 0 {
            tracing::warn!(
                unpersisted,
                "the runtime shut down before accepted events were persisted: they are lost"
            );
        }
    }
}

async fn run(
    bus: &Arc<BusInner>,
    mut receiver: mpsc::Receiver<Arc<EmissionState>>,
    stop: CancellationToken,
) {
    let Some(persister) = &bus.persister else {
        return;
    };
    let mut in_flight = FuturesUnordered::new();
    let mut stopping = false;
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            biased;
            Some((state, saved)) = in_flight.next(), if !in_flight.is_empty() => {
                hand_off(bus, state, saved).await;
                persister.done.fetch_add(1, Ordering::SeqCst);
            }
            received = receiver.recv(), if open && in_flight.len() < MAX_IN_FLIGHT => {
                match received {
                    Some(state) => in_flight.push(persist(bus, state)),
                    None => open = false,
                }
            }
            () = stop.cancelled(), if !stopping => {
                // What was accepted is still received, then `recv` ends.
                stopping = true;
                receiver.close();
            }
        }
    }
    if persister.close_pool.load(Ordering::SeqCst) {
        bus.pool.close();
    }
}

async fn persist(bus: &BusInner, state: Arc<EmissionState>) -> (Arc<EmissionState>, Saved) {
    let Some(store) = bus.store.as_deref() else {
        return (state, Ok(Stored::New));
    };
    let stored = match StoredEvent::from_event(&state.event) {
        Ok(stored) => stored,
        Err(err) => return (state, Err(err)),
    };
    // A due time or a unique key: one branch for events without.
    if state.event.has_options() {
        let saved = persist_with_options(store, &state.event, &stored).await;
        return (state, saved);
    }
    let saved = match (&state.work, store.queue()) {
        (Work::Enqueue, Some(queue)) => queue.enqueue(&stored).await,
        _ => store.save_event(&stored).await,
    };
    (state, saved.map(|()| Stored::New))
}

/// What persisting did.
pub(crate) enum Stored {
    New,
    /// A unique key found an earlier event: nothing stored, the event now
    /// carries that event's id.
    Duplicate,
}

type Saved = Result<Stored, Error>;

/// Persists an event with a due time or a unique key: refused where the
/// store would get it wrong (deliver early, store twice).
async fn persist_with_options(
    store: &dyn crate::EventStore,
    event: &crate::Event,
    stored: &StoredEvent,
) -> Saved {
    let queue = store.queue();
    if let Some(queue) = queue
        && !queue.schedules()
        && event
            .due_at()
            .is_some_and(crate::schedule::clock::is_future)
    {
        return Err(Error::Unsupported(
            "this queue store does not schedule delayed events yet (EventQueue::schedules); \
             emit without a due time, or use a store that schedules"
                .into(),
        ));
    }
    if let Some((key, window)) = event.unique_key_and_window() {
        return match store.append_unique(stored, key, window).await? {
            crate::Appended::New => Ok(Stored::New),
            crate::Appended::Existing(id) => {
                event.properties().set(crate::PROPERTY_EVENT_ID, id);
                Ok(Stored::Duplicate)
            }
        };
    }
    match queue {
        Some(queue) => queue.enqueue(stored).await,
        None => store.save_event(stored).await,
    }
    .map(|()| Stored::New)
}

/// Records how persisting went. Returns the emission when its listeners
/// are still to run; otherwise it is over (failed, or enqueued for the
/// consumers) and its slot is given back.
fn settle(
    bus: &Arc<BusInner>,
    state: Arc<EmissionState>,
    saved: Saved,
) -> Option<Arc<EmissionState>> {
    let dispatch = match saved {
        Err(err) => {
            // The emit's own failure: the error handler must not hide it.
            fail_own(bus, &state, err);
            state.set_persisted(false);
            false
        }
        Ok(Stored::Duplicate) => {
            state.set_persisted(true);
            false
        }
        Ok(Stored::New) => {
            // Persisted, and due later: this process holds it until then.
            let held = matches!(state.work, Work::Dispatch(_))
                && state.event.has_options()
                && match super::timed::hold_if_due_later(bus, &state.event) {
                    Ok(held) => held,
                    Err(err) => {
                        fail_own(bus, &state, err);
                        true
                    }
                };
            state.set_persisted(true);
            !held && matches!(state.work, Work::Dispatch(_))
        }
    };
    if dispatch {
        return Some(state);
    }
    state.finish();
    bus.pool.cancel(state.slot, None);
    None
}

/// After persisting: queue the listeners' job, if any.
async fn hand_off(bus: &Arc<BusInner>, state: Arc<EmissionState>, saved: Saved) {
    if let Some(state) = settle(bus, state, saved) {
        queue_dispatch(bus, state).await;
    }
}

/// Queues an emission's job, waiting for room; on a closed pool the
/// emission yields [`Error::Closed`].
pub(crate) async fn queue_dispatch(bus: &Arc<BusInner>, state: Arc<EmissionState>) {
    state.make_claimable();
    let slot = state.slot;
    let queued = Queued {
        job: Job::Emission(state),
        slot,
    };
    if let Err((
        rejected,
        Queued {
            job: Job::Emission(state),
            ..
        },
    )) = bus.pool.push(queued, || Dispatcher(Arc::clone(bus))).await
        && state.claim()
    {
        fail_own(bus, &state, rejected.into_error());
        state.finish();
        bus.pool.cancel(slot, None);
    }
}

/// Persists and runs an emission in the calling task: what a listener's
/// waiting emit does when the queue is full (waiting could wait for itself).
pub(crate) async fn persist_inline(bus: &Arc<BusInner>, state: Arc<EmissionState>) {
    let (state, saved) = persist(bus, state).await;
    let Some(state) = settle(bus, state, saved) else {
        return;
    };
    state.make_claimable();
    if state.claim() {
        super::emission::run_inline(Arc::clone(bus), state, false).await;
    }
}
