//! The caller's view of one emission: a stream of its listener errors.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};

use futures::Stream;
use futures::task::AtomicWaker;

use super::BusInner;
use super::dispatch::Work;
use super::unread::UnreadErrors;
use crate::pool::{Slot, inside_job};
use crate::{Error, Event, ListenerId};

/// The listener errors of one emission, as a [`Stream`].
///
/// The stream yields every error of the emission — listener errors after their
/// last retry (as passed by the error handler), panics, cancellations, store
/// failures — and ends when the emission's last listener has finished. No
/// error is dropped, however many there are. Awaiting the stream is how a
/// caller waits for the listeners; dropping it does not cancel delivery (the
/// errors it would have yielded are then logged at `warn` level).
///
/// On a bus with a store, the emission's first outcome is the persistence
/// result: [`Emission::persisted`] awaits just that. On a bus with a queue
/// store, an emission ends when the event is durably enqueued; see
/// [`EventBus::emit`](crate::EventBus::emit).
///
/// Awaiting an emission from inside a listener of the same bus never
/// deadlocks, whatever the number of workers: when the emission's job is
/// still queued, the awaiting task takes it and runs it itself.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use soiree::EventBus;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bus = EventBus::new();
/// bus.on("job.run", |_ctx| async { Err("disk full".into()) }).unwrap();
/// let errors: Vec<soiree::Error> = bus.emit("job.run", ()).collect().await;
/// assert_eq!(errors.len(), 1);
/// assert!(errors[0].to_string().contains("disk full"));
/// # }
/// ```
#[must_use = "an Emission streams the listeners' errors; call `detach` to fire and forget"]
pub struct Emission {
    inner: Inner,
}

enum Inner {
    /// The emission failed before dispatch.
    Failed(Option<Error>),
    /// Over, with these errors left to yield.
    Done(VecDeque<Error>),
    Running {
        state: Arc<EmissionState>,
        /// Kept only for emissions made inside a job, which may have to run
        /// their own job (see `poll_next`); others never need it, and
        /// touching the bus's refcount on every emit costs.
        bus: Option<Arc<BusInner>>,
        /// The emission's job, when this task took it over from the queue.
        inline: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    },
}

impl Emission {
    pub(crate) fn failed(error: Error) -> Self {
        Self {
            inner: Inner::Failed(Some(error)),
        }
    }

    /// An emission that is already over, with at most one error.
    pub(crate) fn failed_with(error: Option<Error>) -> Self {
        Self {
            inner: Inner::Failed(error),
        }
    }

    /// `inside`: whether the caller runs inside a job (`inside_job()`, which
    /// the caller has looked up already).
    pub(crate) fn running(state: Arc<EmissionState>, bus: &Arc<BusInner>, inside: bool) -> Self {
        let bus = inside.then(|| Arc::clone(bus));
        Self {
            inner: Inner::Running {
                state,
                bus,
                inline: None,
            },
        }
    }

    /// An emission that is already over and yields `errors`: what a test
    /// double of an [`Emitter`](crate::Emitter) returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use soiree::{Emission, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let errors: Vec<Error> = Emission::completed([Error::Closed]).collect().await;
    /// assert!(matches!(errors.as_slice(), [Error::Closed]));
    /// assert!(Emission::completed([]).is_finished());
    /// # }
    /// ```
    pub fn completed(errors: impl IntoIterator<Item = Error>) -> Self {
        let mut errors: VecDeque<Error> = errors.into_iter().collect();
        match errors.len() {
            0 => Self::failed_with(None),
            1 => Self::failed_with(errors.pop_front()),
            _ => Self {
                inner: Inner::Done(errors),
            },
        }
    }

    /// Lets the emission run on without watching it. Its errors are still
    /// seen by the bus's error handler — listener errors, and the emit's own
    /// failure ([`Error::QueueFull`], [`Error::Store`], …) — and logged at
    /// `warn` if not consumed.
    pub fn detach(self) {}

    /// Reports whether every listener has finished.
    pub fn is_finished(&self) -> bool {
        match &self.inner {
            Inner::Failed(_) | Inner::Done(_) => true,
            Inner::Running { state, .. } => state.finished.load(Ordering::Acquire),
        }
    }

    /// Waits until the event is persisted and returns its id (the
    /// [`PROPERTY_EVENT_ID`](crate::PROPERTY_EVENT_ID) property).
    ///
    /// With a store this is the store's answer: `Ok` once the event is saved
    /// (or durably enqueued, with a queue store), so it survives this
    /// process. Without a store there is nothing to persist: it resolves at
    /// once, when the bus accepted the event.
    ///
    /// The emission goes on afterwards: the stream still yields the
    /// listeners' errors (but not the persistence error this returned).
    ///
    /// # Errors
    ///
    /// The error that stopped the emission before dispatch
    /// ([`Error::Store`], [`Error::QueueFull`], [`Error::Closed`],
    /// [`Error::InvalidTopicName`], …).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only observes the emission.
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::{EventBus, MemoryStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
    /// let bus = EventBus::builder().store(MemoryStore::new()).build()?;
    /// bus.on("order.placed", |_ctx| async { Ok(()) })?;
    /// let mut emission = bus.emit("order.placed", serde_json::json!({ "id": 7 }));
    /// let id = emission.persisted().await?;
    /// assert!(!id.is_empty());
    /// bus.close().await
    /// # }
    /// ```
    pub async fn persisted(&mut self) -> Result<String, Error> {
        std::future::poll_fn(|cx| self.poll_persisted(cx)).await
    }

    fn poll_persisted(&mut self, cx: &mut Context<'_>) -> Poll<Result<String, Error>> {
        let state = match &mut self.inner {
            Inner::Failed(error) => {
                return Poll::Ready(Err(error.take().unwrap_or(Error::Closed)));
            }
            Inner::Done(_) => return Poll::Ready(Ok(String::new())),
            Inner::Running { state, .. } => state,
        };
        for _ in 0..2 {
            match state.persist.load(Ordering::Acquire) {
                PERSIST_OK => return Poll::Ready(Ok(state.event.id().unwrap_or_default())),
                PERSIST_FAILED => {
                    let error = state.pop_error();
                    return Poll::Ready(Err(error.unwrap_or(Error::Closed)));
                }
                _ => state.waker.register(cx.waker()),
            }
        }
        Poll::Pending
    }
}

impl Stream for Emission {
    type Item = Error;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Error>> {
        let (state, bus, inline) = match &mut self.inner {
            Inner::Failed(error) => return Poll::Ready(error.take()),
            Inner::Done(errors) => return Poll::Ready(errors.pop_front()),
            Inner::Running { state, bus, inline } => (state, bus, inline),
        };
        // Inside a job, a queued emission may never get a worker (they may
        // all be waiting like this one): run it here instead.
        if let Some(bus) = bus
            && inline.is_none()
            && inside_job()
            && state.claim()
        {
            *inline = Some(Box::pin(run_inline(
                Arc::clone(bus),
                Arc::clone(state),
                true,
            )));
        }
        if let Some(job) = inline
            && job.as_mut().poll(cx).is_ready()
        {
            *inline = None;
        }
        for _ in 0..2 {
            if let Some(error) = state.pop_error() {
                return Poll::Ready(Some(error));
            }
            if state.finished.load(Ordering::Acquire) {
                return Poll::Ready(state.pop_error());
            }
            // Register, then look again: a push or finish between the first
            // look and the registration would otherwise be missed.
            state.waker.register(cx.waker());
        }
        Poll::Pending
    }
}

impl Drop for Emission {
    fn drop(&mut self) {
        match &mut self.inner {
            Inner::Running { state, inline, .. } => {
                if let Some(job) = inline.take() {
                    // Dropping never cancels delivery: the job this task took
                    // over goes on in a task of its own.
                    match tokio::runtime::Handle::try_current() {
                        Ok(runtime) => drop(runtime.spawn(job)),
                        Err(_) => tracing::warn!(
                            topic = state.event.topic(),
                            "an emission run by its awaiting task was dropped outside a runtime: \
                             its remaining listeners did not run"
                        ),
                    }
                }
                state.unread.mark_abandoned(state.unread_logger());
            }
            Inner::Failed(Some(error)) => {
                tracing::warn!(%error, "emission failed with no one to receive the error");
            }
            Inner::Done(errors) => {
                for error in errors.drain(..) {
                    tracing::warn!(%error, "emission failed with no one to receive the error");
                }
            }
            Inner::Failed(None) => {}
        }
    }
}

impl futures::stream::FusedStream for Emission {
    fn is_terminated(&self) -> bool {
        match &self.inner {
            Inner::Failed(error) => error.is_none(),
            Inner::Done(errors) => errors.is_empty(),
            Inner::Running { state, .. } => {
                state.finished.load(Ordering::Acquire) && state.unread.is_empty()
            }
        }
    }
}

impl fmt::Debug for Emission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Failed(error) => f.debug_tuple("Emission::Failed").field(error).finish(),
            Inner::Done(errors) => f.debug_tuple("Emission::Done").field(errors).finish(),
            Inner::Running { state, .. } => f
                .debug_struct("Emission")
                .field("topic", &state.event.topic())
                .field("finished", &state.finished.load(Ordering::Relaxed))
                .finish(),
        }
    }
}

/// Shared by the emission's job, its listeners' contexts, and the caller's
/// [`Emission`]: one allocation per emit.
pub(crate) struct EmissionState {
    pub(crate) event: Event,
    pub(crate) work: Work,
    /// The pool's count of this emission, from accepted to finished.
    pub(crate) slot: Slot,
    /// `QUEUED` once its job may be run, `CLAIMED` once someone runs it.
    dispatch: AtomicU8,
    /// `PERSIST_*`: how persisting went.
    persist: AtomicU8,
    /// The first error that reached the emission, as text, and the listener
    /// that failed: a delivery that failed is handed to the queue's `fail`
    /// with it.
    first_error: std::sync::OnceLock<(String, Option<ListenerId>)>,
    /// The errors the caller has not read, and who logs them once it is
    /// gone.
    unread: UnreadErrors<Error>,
    waker: AtomicWaker,
    finished: AtomicBool,
}

impl EmissionState {
    /// `persisted`: nothing left to persist (no store, or a delivery).
    pub(crate) fn new(
        event: Event,
        work: Work,
        slot: Slot,
        watched: bool,
        persisted: bool,
    ) -> Self {
        Self {
            event,
            work,
            slot,
            dispatch: AtomicU8::new(WAITING),
            persist: AtomicU8::new(if persisted {
                PERSIST_OK
            } else {
                PERSIST_PENDING
            }),
            first_error: std::sync::OnceLock::new(),
            unread: UnreadErrors::new(!watched),
            waker: AtomicWaker::new(),
            finished: AtomicBool::new(false),
        }
    }

    /// Delivers an error to the caller (or to the log once nobody watches);
    /// the first one reserves room for `reserve` errors.
    pub(crate) fn push_error(&self, error: Error, reserve: usize) {
        // Only a queue's delivery hands its first error to the store.
        if let Work::Deliver(delivered) = &self.work
            && self.first_error.get().is_none()
        {
            let listener = error.listener_id().cloned();
            let first = self.first_error.set((error.to_string(), listener)).is_ok();
            if first && delivered.dead_letters && self.unread.is_abandoned() {
                // Nobody reads it: the dead-letter warning says it, once.
                return;
            }
        }
        if self.unread.push(error, reserve) {
            self.unread.drain(self.unread_logger());
        } else {
            self.waker.wake();
        }
    }

    /// The first error that reached the emission, if any.
    pub(crate) fn first_error(&self) -> Option<&(String, Option<ListenerId>)> {
        self.first_error.get()
    }

    /// Marks the job as ready to run: from here a worker or an awaiting
    /// task may claim it.
    pub(crate) fn make_claimable(&self) {
        self.dispatch.store(QUEUED, Ordering::Release);
    }

    /// Takes the job to run it; false when someone else took it (or it is
    /// not ready to run yet).
    pub(crate) fn claim(&self) -> bool {
        self.dispatch
            .compare_exchange(QUEUED, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Records how persisting went (a failure's error is pushed first).
    pub(crate) fn set_persisted(&self, ok: bool) {
        let outcome = if ok { PERSIST_OK } else { PERSIST_FAILED };
        self.persist.store(outcome, Ordering::Release);
        if !self.unread.is_abandoned_hint() {
            self.waker.wake();
        }
    }

    pub(crate) fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        // A detached emission has no one to wake.
        if !self.unread.is_abandoned_hint() {
            self.waker.wake();
        }
    }

    /// Logs the errors nobody will read (the event's id looked up once).
    fn unread_logger(&self) -> impl FnMut(Error) + '_ {
        let mut event_id = None;
        move |error| {
            let event_id = event_id.get_or_insert_with(|| self.event.id());
            tracing::warn!(
                topic = self.event.topic(),
                event_id = event_id.as_deref().unwrap_or(""),
                %error,
                "listener error with no one to receive it"
            );
        }
    }

    /// The next unread error, taking the lock only once there were errors.
    fn pop_error(&self) -> Option<Error> {
        self.unread.pop()
    }
}

const WAITING: u8 = 0;
const QUEUED: u8 = 1;
const CLAIMED: u8 = 2;

const PERSIST_PENDING: u8 = 0;
const PERSIST_OK: u8 = 1;
const PERSIST_FAILED: u8 = 2;

/// Runs a claimed emission in the calling task, counted by the pool as a job
/// of its own slot; `queued`: its job was pushed (and is dropped by the
/// worker that pops it).
pub(crate) async fn run_inline(bus: Arc<BusInner>, state: Arc<EmissionState>, queued: bool) {
    let flags = Arc::new(crate::pool::JobFlags::default());
    let slot = state.slot;
    let pool = Arc::clone(&bus.pool);
    pool.count_inline(queued);
    pool.run_job(slot, &flags, super::dispatch::run(&bus, state))
        .await;
}
