//! Batch listeners: one call for several events, an outcome per event.
//!
//! ```text
//! events     Batch: what a batch listener gets
//! outcome    BatchOutcome: what it returns, an outcome per event
//! collect    the per-event listener: gathers events into batches, waits for its own outcome
//! run        runs one batch (panics caught) and hands each event its outcome
//! ```
//!
//! A batch listener is registered as one ordinary listener: each event's
//! delivery runs it through the usual pipeline (dedup, results, retries,
//! acknowledgement), and the per-event call waits for the outcome its batch
//! gives it. So a redelivered event skips a batch listener that already
//! succeeded for it, and only the events that failed are retried or
//! dead-lettered.
//!
//! The bus's listener timeout bounds each per-event call, its wait for the
//! batch included: an event whose call timed out before its batch started
//! is left out of it (`run`); one whose batch had started may still be
//! handled by it while the bus records the timeout and runs the event
//! again — at least once (see [`EventBus::on_batch`](crate::EventBus::on_batch)).

mod collect;
mod events;
mod outcome;
mod run;

pub(crate) use collect::BatchListener;
pub use events::Batch;
pub use outcome::BatchOutcome;
