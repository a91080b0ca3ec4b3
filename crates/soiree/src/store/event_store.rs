//! The base store trait.

use async_trait::async_trait;

use super::{EventHistory, EventQueue, HandlerDedup, StoredResult};
use crate::{Result, StoredEvent};

/// Persists events and listener outcomes.
///
/// The bus calls [`save_event`](EventStore::save_event) before dispatching an
/// event (or, for a store with a [`queue`](EventStore::queue), enqueues it
/// instead) and [`save_handler_result`](EventStore::save_handler_result) after
/// every listener attempt. Optional abilities are returned by the accessor
/// methods, which default to `None`.
///
/// # Examples
///
/// A store that only counts what it is given, on a bus:
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use soiree::{async_trait, EventBus, EventStore, StoredEvent, StoredResult, Result};
///
/// #[derive(Debug, Default)]
/// struct Counting { events: AtomicUsize, results: AtomicUsize }
///
/// #[async_trait]
/// impl EventStore for Counting {
///     async fn save_event(&self, _event: &StoredEvent) -> Result<()> {
///         self.events.fetch_add(1, Ordering::Relaxed);
///         Ok(())
///     }
///     async fn save_handler_result(&self, _result: &StoredResult) -> Result<()> {
///         self.results.fetch_add(1, Ordering::Relaxed);
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = Arc::new(Counting::default());
/// let bus = EventBus::builder().shared_store(store.clone()).build()?;
/// bus.on("user.created", |_ctx| async { Ok(()) })?;
/// let errors: Vec<_> = futures::StreamExt::collect(bus.emit("user.created", "ada")).await;
/// assert!(errors.is_empty());
/// bus.close().await?;
/// assert_eq!(store.events.load(Ordering::Relaxed), 1);
/// assert_eq!(store.results.load(Ordering::Relaxed), 1);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug + 'static {
    /// Persists an event before it is dispatched.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the event was not persisted.
    /// [`Error::LimitExceeded`](crate::Error::LimitExceeded) (and the other
    /// errors of [`limits`](crate::limits)) when the event is past a limit:
    /// nothing is stored. Implementations check with
    /// [`limits::encode_event`](crate::limits::encode_event) (which also
    /// writes the JSON) or [`limits::check_stored`](crate::limits::check_stored).
    ///
    /// # Cancel safety
    ///
    /// Implementations must tolerate cancellation: a cancelled call may or
    /// may not have taken effect, and the bus treats it as not done.
    async fn save_event(&self, event: &StoredEvent) -> Result<()>;

    /// Persists the outcome of one listener attempt. A success also marks the
    /// listener as done for the event id in this store's consumer group, for
    /// [`HandlerDedup`].
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the result was not persisted.
    ///
    /// # Cancel safety
    ///
    /// Implementations must tolerate cancellation: a cancelled call may or
    /// may not have taken effect, and the bus treats it as not done.
    async fn save_handler_result(&self, result: &StoredResult) -> Result<()>;

    /// The store's queue, when events should be enqueued rather than
    /// dispatched in the emitting process.
    fn queue(&self) -> Option<&dyn EventQueue> {
        None
    }

    /// The store's record of listeners that already succeeded.
    fn dedup(&self) -> Option<&dyn HandlerDedup> {
        None
    }

    /// Paged reads of what the store holds.
    fn history(&self) -> Option<&dyn EventHistory> {
        None
    }
}
