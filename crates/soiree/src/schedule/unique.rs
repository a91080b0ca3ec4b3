//! Unique keys at emit: what a store answers.

/// How [`EventStore::append_unique`](crate::EventStore::append_unique)
/// went: the event was appended, or an event with the same key was appended
/// within the window and nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Appended {
    /// The event was stored (enqueued, for a queue store).
    New,
    /// Nothing was stored: the event with this id holds the key.
    Existing(String),
}
