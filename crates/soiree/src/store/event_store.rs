//! The base store trait.

use async_trait::async_trait;

use super::{EventHistory, EventQueue, HandlerDedup, LeaderLease, StoredResult};
use crate::{Appended, Error, Result, StoredEvent};

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

    /// Appends `event` as the bus would (enqueued on a store with a
    /// [`queue`](Self::queue), saved otherwise) unless an event appended
    /// with the same `key` less than `window` ago holds it: then nothing is
    /// stored and the answer is that event's id. Check and append are one
    /// atomic step (a unique index, `SET NX`, a lock), so concurrent emits
    /// of one key store one event. The window runs from the first append;
    /// a duplicate does not extend it. The bus calls it for events emitted
    /// with [`Event::unique_key`](crate::Event::unique_key).
    ///
    /// Replays ([`Inspect::replay`](crate::Inspect::replay), dead-letter
    /// replays) re-deliver a stored event under its own id and do not go
    /// through here: a replay is never refused as a duplicate and does not
    /// renew the key's window.
    ///
    /// The default refuses: a store opts in by implementing it (the
    /// [`MemoryStore`](crate::MemoryStore) does).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] from the default; otherwise as
    /// [`save_event`](Self::save_event) and
    /// [`EventQueue::enqueue`](crate::EventQueue::enqueue).
    ///
    /// # Cancel safety
    ///
    /// As [`save_event`](Self::save_event).
    async fn append_unique(
        &self,
        event: &StoredEvent,
        key: &str,
        window: std::time::Duration,
    ) -> Result<Appended> {
        let _ = (event, key, window);
        Err(Error::Unsupported(
            "unique keys: this store does not implement EventStore::append_unique".into(),
        ))
    }

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

    /// The store itself, for code that must know which store a bus runs on
    /// (a store that registers listeners needing its own queue checks that
    /// [`EventBus::store`](crate::EventBus::store) is itself). `None` by
    /// default.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// The store's leader leases, through which the processes of a bus
    /// elect the one that fires periodic events.
    fn leases(&self) -> Option<&dyn LeaderLease> {
        None
    }

    /// Listener limits shared by every process of the store (see
    /// [`SharedLimits`](crate::SharedLimits)); `None`: each process
    /// enforces its listeners' limits on its own.
    fn limits(&self) -> Option<&dyn crate::SharedLimits> {
        None
    }
}
