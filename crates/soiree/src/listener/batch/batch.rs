//! What a batch listener receives and what it returns.

use std::fmt;

use super::super::EventContext;
use crate::{BoxError, Event};

/// The events a batch listener handles in one call (see
/// [`EventBus::on_batch`](crate::EventBus::on_batch)): one
/// [`EventContext`] per event, in the order they reached the batch, each
/// with its event, properties, attempt and event id.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use soiree::{Batch, BatchOutcome, EventBus};
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
        BatchOutcome {
            outcomes: self.items.iter().map(|_| Ok(())).collect(),
        }
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

/// A batch listener's answer: one outcome per event of its [`Batch`], in
/// batch order. An event whose outcome is an error is handled as if a
/// listener of its own had returned that error: retried per the bus's
/// [`RetryPolicy`](crate::RetryPolicy) (in a later batch), recorded, then
/// failed or dead-lettered with its delivery alone; a
/// [`Permanent`](crate::Permanent) error is not retried and a
/// [`Snooze`](crate::Snooze) snoozes that event. The events that succeeded
/// are recorded as handled and acknowledged.
///
/// An event the outcome says nothing of (a shorter list than the batch)
/// fails with an error saying so; outcomes past the batch's length are
/// ignored, with a warning.
///
/// # Examples
///
/// ```
/// use soiree::{BatchOutcome, BoxError};
///
/// // From a list of results, one per event.
/// let outcome: BatchOutcome = vec![Ok(()), Err::<(), BoxError>("bad row".into())].into();
/// assert_eq!(outcome.failures(), 1);
/// // Or collected.
/// let outcome: BatchOutcome = (0..3).map(|_| Ok::<(), BoxError>(())).collect();
/// assert_eq!((outcome.len(), outcome.failures()), (3, 0));
/// ```
#[derive(Default)]
pub struct BatchOutcome {
    pub(super) outcomes: Vec<Result<(), BoxError>>,
}

impl BatchOutcome {
    /// Marks event `index` of the batch (its place in
    /// [`Batch::contexts`]) failed with `error`.
    ///
    /// # Panics
    ///
    /// When `index` is not a place in the outcome (a panic in a batch
    /// listener fails every event of its batch).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use soiree::{Batch, EventBus, permanent};
    ///
    /// let bus = EventBus::new();
    /// bus.on_batch("import", "row.imported", 50, Duration::from_millis(20), |batch: Batch| async move {
    ///     let mut outcome = batch.succeeded();
    ///     for (index, ctx) in batch.iter().enumerate() {
    ///         if ctx.payload_as::<i64>().is_none() {
    ///             // Retrying will not make it a number.
    ///             outcome.fail(index, permanent("not a number"));
    ///         }
    ///     }
    ///     Ok(outcome)
    /// }).unwrap();
    /// ```
    pub fn fail(&mut self, index: usize, error: impl Into<BoxError>) -> &mut Self {
        let len = self.outcomes.len();
        let Some(slot) = self.outcomes.get_mut(index) else {
            panic!("BatchOutcome::fail: index {index} is outside the batch of {len} events");
        };
        *slot = Err(error.into());
        self
    }

    /// How many outcomes it holds.
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// Reports whether it holds no outcome.
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }

    /// How many of its outcomes are errors.
    pub fn failures(&self) -> usize {
        self.outcomes.iter().filter(|o| o.is_err()).count()
    }
}

impl From<Vec<Result<(), BoxError>>> for BatchOutcome {
    fn from(outcomes: Vec<Result<(), BoxError>>) -> Self {
        Self { outcomes }
    }
}

impl FromIterator<Result<(), BoxError>> for BatchOutcome {
    fn from_iter<I: IntoIterator<Item = Result<(), BoxError>>>(iter: I) -> Self {
        Self {
            outcomes: iter.into_iter().collect(),
        }
    }
}

impl fmt::Debug for BatchOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchOutcome")
            .field("len", &self.outcomes.len())
            .field("failures", &self.failures())
            .finish()
    }
}
