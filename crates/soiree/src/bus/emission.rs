//! The caller's view of one emission: a stream of its listener errors.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures::Stream;
use futures::task::AtomicWaker;

use super::dispatch::Work;
use crate::{Error, Event};

/// The listener errors of one emission, as a [`Stream`].
///
/// The stream yields every error of the emission — listener errors after their
/// last retry (as passed by the error handler), panics, cancellations, store
/// failures — and ends when the emission's last listener has finished. No
/// error is dropped, however many there are. Awaiting the stream is how a
/// caller waits for the listeners; dropping it does not cancel delivery (the
/// errors it would have yielded are then logged at `warn` level).
///
/// On a bus with a queue store, an emission ends when the event is durably
/// enqueued; see [`EventBus::emit`](crate::EventBus::emit).
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
    Running(Arc<EmissionState>),
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

    pub(crate) fn running(state: Arc<EmissionState>) -> Self {
        Self {
            inner: Inner::Running(state),
        }
    }

    /// Lets the emission run on without watching it. Errors are still seen by
    /// the bus's error handler, and logged if not consumed.
    pub fn detach(self) {}

    /// Reports whether every listener has finished.
    pub fn is_finished(&self) -> bool {
        match &self.inner {
            Inner::Failed(_) => true,
            Inner::Running(state) => state.finished.load(Ordering::Acquire),
        }
    }
}

impl Stream for Emission {
    type Item = Error;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Error>> {
        let state = match &mut self.inner {
            Inner::Failed(error) => return Poll::Ready(error.take()),
            Inner::Running(state) => state,
        };
        for _ in 0..2 {
            if let Some(error) = state.errors().pop_front() {
                return Poll::Ready(Some(error));
            }
            if state.finished.load(Ordering::Acquire) {
                return Poll::Ready(state.errors().pop_front());
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
        match &self.inner {
            Inner::Running(state) => {
                state.abandoned.store(true, Ordering::SeqCst);
                state.log_unread();
            }
            Inner::Failed(Some(error)) => {
                tracing::warn!(%error, "emission failed with no one to receive the error");
            }
            Inner::Failed(None) => {}
        }
    }
}

impl futures::stream::FusedStream for Emission {
    fn is_terminated(&self) -> bool {
        match &self.inner {
            Inner::Failed(error) => error.is_none(),
            Inner::Running(state) => {
                state.finished.load(Ordering::Acquire) && state.errors().is_empty()
            }
        }
    }
}

impl fmt::Debug for Emission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Failed(error) => f.debug_tuple("Emission::Failed").field(error).finish(),
            Inner::Running(state) => f
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
    errors: Mutex<VecDeque<Error>>,
    waker: AtomicWaker,
    finished: AtomicBool,
    abandoned: AtomicBool,
}

impl EmissionState {
    pub(crate) fn new(event: Event, work: Work, watched: bool) -> Self {
        Self {
            event,
            work,
            errors: Mutex::new(VecDeque::new()),
            waker: AtomicWaker::new(),
            finished: AtomicBool::new(false),
            abandoned: AtomicBool::new(!watched),
        }
    }

    /// Delivers an error to the caller (or to the log once nobody watches);
    /// the first one reserves room for `reserve` errors.
    pub(crate) fn push_error(&self, error: Error, reserve: usize) {
        {
            let mut errors = self.errors();
            if errors.capacity() == 0 {
                errors.reserve(reserve);
            }
            errors.push_back(error);
        }
        if self.abandoned.load(Ordering::SeqCst) {
            self.log_unread();
        } else {
            self.waker.wake();
        }
    }

    pub(crate) fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        // A detached emission has no one to wake.
        if !self.abandoned.load(Ordering::Relaxed) {
            self.waker.wake();
        }
    }

    fn log_unread(&self) {
        for error in self.errors().drain(..) {
            tracing::warn!(topic = self.event.topic(), %error, "listener error with no one to receive it");
        }
    }

    fn errors(&self) -> MutexGuard<'_, VecDeque<Error>> {
        self.errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
