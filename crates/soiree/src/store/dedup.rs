//! Handler de-duplication by event id.

use async_trait::async_trait;

use crate::Result;

/// Knows which listeners already succeeded for an event id, so that a
/// redelivered or replayed event skips them.
///
/// Successes are recorded by
/// [`EventStore::save_handler_result`](super::EventStore::save_handler_result),
/// per consumer group: a store handle reads for one group (a queue store's
/// group; [`MemoryStore::in_group`](crate::MemoryStore::in_group) for the
/// memory store), records the successes of its listeners for that group
/// and answers for that group only. Another group's listener of the same
/// name has not run for this group, so it never counts: every group runs
/// its listeners for every event.
/// Listener ids must be stable across processes for this to work: register
/// listeners with [`EventBus::on_named`](crate::EventBus::on_named).
#[async_trait]
pub trait HandlerDedup: Send + Sync {
    /// Reports whether `handler_id` already succeeded for `event_id` in this
    /// store's consumer group.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store cannot answer; the
    /// bus then runs the listener (at-least-once).
    ///
    /// # Cancel safety
    ///
    /// Implementations must tolerate cancellation: a cancelled call may or
    /// may not have taken effect, and the bus treats it as not done.
    async fn handler_succeeded(&self, event_id: &str, handler_id: &str) -> Result<bool>;
}
