//! A bounded worker pool on tokio.
//!
//! Work waits in a bounded queue; at most `workers` tasks drain it at once.
//! The pool is split as tower's buffer is: a handle side (the queue, its
//! counters and wake-ups, in `queue.rs`) and a worker side (`worker.rs`),
//! generic over what a job is, so that the bus's jobs need no boxing.
//! [`Pool::resize`] takes effect while work is running.

mod idle;
mod options;
#[allow(clippy::module_inception)]
mod pool;
mod queue;
mod worker;

pub(crate) use idle::Slot;
pub use options::{DEFAULT_QUEUE_CAPACITY, PoolOptions};
pub use pool::Pool;
pub(crate) use queue::{Handler, JobFlags, Queued, Rejected, WorkQueue, inside_job};
