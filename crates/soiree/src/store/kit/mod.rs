//! The delivery kit: the parts of the delivery lifecycle written once for
//! every queue store, so that a store implements primitive operations
//! only (see [`EventQueue`](crate::EventQueue)).
//!
//! - lease keep-alive: the bus's consumer extends the leases of the
//!   deliveries whose listeners run, through
//!   [`EventQueue::extend`](crate::EventQueue::extend) every
//!   [`EventQueue::lease_interval`](crate::EventQueue::lease_interval); a
//!   store writes no keep-alive task of its own;
//! - read-ahead: while it keeps asking, the bus's consumer takes per
//!   dequeue about a quarter of the lease's worth of deliveries at the rate
//!   it took its last batch, up to
//!   [`EventQueue::read_ahead`](crate::EventQueue::read_ahead) (free
//!   workers only after its workers were all busy that long), holds the
//!   surplus, keeps its leases with the running ones and hands it back at
//!   close; a store's dequeue takes what it is asked for, and a store sizes
//!   no reads of its own;
//! - [`DedupCache`]: the listener successes of the deliveries a consumer
//!   holds, so that dedup lookups need no round trip;
//! - [`BatchWriter`] and [`ResultWriter`]: writes batched into one round
//!   trip with a per-item outcome (a failing batch is split until only its
//!   bad items fail), the second written behind and flushed before an
//!   acknowledgement (results before ack), never retried forever. The rule
//!   is written once, at [`EventQueue::ack`](crate::EventQueue::ack):
//!   a result refused for good is logged, counted and dropped; a result
//!   lost to a transient failure holds back its own delivery only
//!   ([`DedupCache::results_lost`], [`held_back`]).
//!
//! # What a queue store writes
//!
//! Its primitives, each about one round trip:
//!
//! - [`EventStore::save_event`](crate::EventStore::save_event) /
//!   [`EventQueue::enqueue`](crate::EventQueue::enqueue): append (through a
//!   [`BatchWriter`] to batch concurrent appends);
//! - [`EventStore::save_handler_result`](crate::EventStore::save_handler_result):
//!   [`ResultWriter::submit`] plus [`DedupCache::record`] on success;
//! - [`EventQueue::dequeue`](crate::EventQueue::dequeue): claim, filling a
//!   [`DedupCache`] with the batch's successes;
//! - [`EventQueue::ack`](crate::EventQueue::ack) and
//!   [`EventQueue::fail`](crate::EventQueue::fail): [`ResultWriter::flush`]
//!   (its `given_up` marks [`DedupCache::results_lost`]), then settle the
//!   deliveries [`DedupCache::lost`] does not hold back, then
//!   [`DedupCache::remove`] and [`held_back`];
//! - [`EventQueue::release`](crate::EventQueue::release),
//!   [`EventQueue::extend`](crate::EventQueue::extend) with
//!   [`EventQueue::lease_interval`](crate::EventQueue::lease_interval),
//!   [`EventQueue::read_ahead`](crate::EventQueue::read_ahead) and
//!   [`EventQueue::backlog`](crate::EventQueue::backlog);
//! - [`HandlerDedup::handler_succeeded`](crate::HandlerDedup::handler_succeeded):
//!   [`DedupCache::succeeded`], else a flush and a read.
//!
//! The bus does the rest: read-ahead, batching and bounded retries of
//! settling calls, lease keep-alive, failure routing to `fail`, the
//! hand-back at close.
//!
//! # Why the Redis store keeps its own pipelined writer
//!
//! `soiree-redis` batches its appends and result records with a writer of
//! its own (`soiree-redis/src/writer.rs`), not a [`BatchWriter`], because
//! a Redis pipeline already gives what the kit's writer has to work for,
//! and the kit's writer would lose what the store relies on:
//!
//! - per-item outcomes come free: a pipeline answers each command on its
//!   own, so one refused command fails its own request in the same round
//!   trip. A [`BatchWriter`] write reports one outcome per batch and finds
//!   a poison item by splitting, up to `2 n - 1` round trips;
//! - several pipelines are in flight at once for appends, where a
//!   [`BatchWriter`] writes one batch at a time;
//! - each request carries its deadline (its write timeout): a request still
//!   unsent at its deadline, or whose caller stopped waiting, is never sent,
//!   so a caller hears within its timeout even while the connection is
//!   being re-established;
//! - the results writer sends one pipeline at a time, so a flush before an
//!   `XACK` orders results before the acknowledgement, and it takes
//!   fire-and-forget commands (`write_detached`) whose failure it tells
//!   a callback (which marks the delivery held back, or counts a refusal).
//!
//! Moving it onto [`BatchWriter`] would need per-item outcomes from the
//! write function, deadlines and in-flight pipelines in the kit: a
//! different writer, not this one.

mod batch_writer;
mod dedup_cache;
pub(crate) mod lease_keeper;
mod result_writer;

/// What every store's [`LeaderLease`](crate::LeaderLease) checks and converts.
pub use super::lease::{check_lease_args, ttl_ms};

/// GCRA arithmetic for stores that keep rates ([`SharedLimits::take_rate`](crate::SharedLimits::take_rate)).
pub use super::shared_limits::{gcra, gcra_interval};
pub use batch_writer::{BatchError, BatchWriter, WriteError, write_isolating};
pub use dedup_cache::DedupCache;
#[cfg(feature = "metrics")]
pub use dedup_cache::held_back;
pub use result_writer::{GivenUp, ResultWriter};
