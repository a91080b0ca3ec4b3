//! What a batch listener returns: an outcome per event.

use std::fmt;

use crate::BoxError;

/// A batch listener's answer: one outcome per event of its [`Batch`](crate::Batch), in
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
    /// [`Batch::contexts`](crate::Batch::contexts)) failed with `error`.
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
