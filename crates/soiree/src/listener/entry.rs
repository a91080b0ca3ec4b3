//! The listener trait and a registered listener.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;

use super::{EventContext, ListenerId};
use crate::BoxError;

/// An event handler: an async function of an [`EventContext`].
///
/// Any `Fn(EventContext) -> impl Future<Output = Result<(), BoxError>>` that
/// is `Send + Sync + 'static` is a listener.
///
/// # Examples
///
/// ```
/// use soiree::{EventBus, EventContext, BoxError};
///
/// async fn audit(ctx: EventContext) -> Result<(), BoxError> {
///     println!("{} happened", ctx.topic());
///     Ok(())
/// }
///
/// let bus = EventBus::new();
/// bus.on("user.*", audit).unwrap();
/// bus.on("user.deleted", |ctx: EventContext| async move {
///     if ctx.property_str("reason").is_none() {
///         return Err("a deletion needs a reason".into());
///     }
///     Ok(())
/// }).unwrap();
/// ```
pub trait Listener: Send + Sync + 'static {
    /// Handles one event.
    fn call(&self, ctx: EventContext) -> BoxFuture<'static, Result<(), BoxError>>;
}

impl<F, Fut> Listener for F
where
    F: Fn(EventContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    fn call(&self, ctx: EventContext) -> BoxFuture<'static, Result<(), BoxError>> {
        Box::pin(self(ctx))
    }
}

/// A listener registered on a pattern.
pub(crate) struct ListenerEntry {
    pub(crate) id: ListenerId,
    pub(crate) pattern: std::sync::Arc<str>,
    pub(crate) listener: std::sync::Arc<dyn Listener>,
    pub(crate) counters: crate::metrics::ListenerCounters,
    /// With limits set: what a run takes before it starts.
    pub(crate) limiter: Option<Box<super::limit::Limiter>>,
    removed: AtomicBool,
}

impl ListenerEntry {
    pub(crate) fn new(
        id: ListenerId,
        pattern: &str,
        listener: std::sync::Arc<dyn Listener>,
        counters: crate::metrics::ListenerCounters,
        limiter: Option<super::limit::Limiter>,
    ) -> Self {
        Self {
            id,
            pattern: pattern.into(),
            listener,
            counters,
            limiter: limiter.map(Box::new),
            removed: AtomicBool::new(false),
        }
    }

    /// Marks the entry removed, so that emissions already routed to it skip it.
    pub(crate) fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }

    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for ListenerEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerEntry")
            .field("id", &self.id)
            .field("pattern", &self.pattern)
            .field("limiter", &self.limiter)
            .field("removed", &self.is_removed())
            .finish()
    }
}
