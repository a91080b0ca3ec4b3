//! What a batch listener receives.

use std::fmt;

use super::super::EventContext;
use super::BatchOutcome;
use crate::Event;

/// The events a batch listener handles in one call (see
/// [`EventBus::on_batch`](crate::EventBus::on_batch)): one
/// [`EventContext`] per event, in the order they reached the batch, each
/// with its event, properties, attempt and event id.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use soiree::{Batch, EventBus};
///
/// let bus = EventBus::new();
/// bus.on_batch("bulk-insert", "order.placed", 100, Duration::from_millis(50), |batch: Batch| async move {
///     let ids: Vec<Option<String>> = batch.iter().map(|ctx| ctx.event_id()).collect();
///     println!("inserting {} orders: {ids:?}", batch.len());
///     Ok(batch.succeeded())
/// }).unwrap();
/// ```
pub struct Batch {
    items: Vec<EventContext>,
}

impl Batch {
    pub(crate) fn new(items: Vec<EventContext>) -> Self {
        Self { items }
    }

    /// How many events the batch holds (from 1 to the listener's
    /// `max_items`).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Reports whether the batch holds no event (never, for a batch a
    /// listener receives).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The events' contexts, in batch order: outcome `i` of the
    /// [`BatchOutcome`] is event `i`'s.
    pub fn contexts(&self) -> &[EventContext] {
        &self.items
    }

    /// The events' contexts, in batch order.
    pub fn iter(&self) -> std::slice::Iter<'_, EventContext> {
        self.items.iter()
    }

    /// The events, in batch order.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.items.iter().map(EventContext::event)
    }

    /// An outcome with every event of the batch succeeded, to
    /// [`fail`](BatchOutcome::fail) some of them on.
    pub fn succeeded(&self) -> BatchOutcome {
        self.items.iter().map(|_| Ok(())).collect()
    }
}

impl<'a> IntoIterator for &'a Batch {
    type Item = &'a EventContext;
    type IntoIter = std::slice::Iter<'a, EventContext>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.items).finish()
    }
}
