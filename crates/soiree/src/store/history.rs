//! Paged reads of stored events and results.

use async_trait::async_trait;

use super::StoredResult;
use crate::{Result, StoredEvent};

/// One page of a listing, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The cursor of the next page, or `None` on the last page.
    pub next: Option<String>,
}

/// Reads back what a store holds, a page at a time.
#[async_trait]
pub trait EventHistory: Send + Sync {
    /// Stored events after `cursor` (from the start when `None`), at most `limit`.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store cannot be read,
    /// [`Error::Serialization`](crate::Error::Serialization) for a malformed entry.
    ///
    /// # Cancel safety
    ///
    /// Implementations must tolerate cancellation: a cancelled call may or
    /// may not have taken effect, and the bus treats it as not done.
    async fn events(&self, cursor: Option<&str>, limit: usize) -> Result<Page<StoredEvent>>;

    /// Stored listener results after `cursor`, at most `limit`.
    ///
    /// # Errors
    ///
    /// As for [`EventHistory::events`].
    ///
    /// # Cancel safety
    ///
    /// Implementations must tolerate cancellation: a cancelled call may or
    /// may not have taken effect, and the bus treats it as not done.
    async fn results(&self, cursor: Option<&str>, limit: usize) -> Result<Page<StoredResult>>;
}
