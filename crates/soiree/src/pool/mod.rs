//! A bounded worker pool on tokio.
//!
//! Work waits in a lock-free queue; at most `workers` tasks drain it at once.
//! Workers are spawned on demand and exit when the queue is empty, so an idle
//! pool costs nothing, and [`Pool::resize`] takes effect while work is running.

mod core;
mod options;
#[allow(clippy::module_inception)]
mod pool;

pub(crate) use self::core::{Job, PoolCore};
pub use options::PoolOptions;
pub use pool::Pool;
