//! The delivery kit: the parts of the delivery lifecycle written once for
//! every queue store, so that a store implements primitive operations
//! only (see [`EventQueue`](crate::EventQueue)).
//!
//! - lease keep-alive: the bus's consumer extends the leases of the
//!   deliveries whose listeners run, through
//!   [`EventQueue::extend`](crate::EventQueue::extend) every
//!   [`EventQueue::lease_interval`](crate::EventQueue::lease_interval); a
//!   store writes no keep-alive task of its own;
//! - [`DedupCache`]: the listener successes of the deliveries a consumer
//!   holds, so that dedup lookups need no round trip;
//! - [`BatchWriter`] and [`ResultWriter`]: writes batched into one round
//!   trip with a per-item outcome (a failing batch is split until only its
//!   bad items fail), the second written behind and flushed before an
//!   acknowledgement (results before ack), never retried forever.

mod batch_writer;
mod dedup_cache;
pub(crate) mod lease_keeper;
mod result_writer;

pub use batch_writer::{BatchError, BatchWriter, WriteError, write_isolating};
pub use dedup_cache::DedupCache;
pub use result_writer::ResultWriter;
