//! Listeners: the async functions that handle events, their ids, and the
//! context they receive.

mod batch;
mod binding;
mod context;
mod entry;
mod id;
mod job;
mod limit;
mod panic;
mod pipeline;

pub(crate) use batch::BatchListener;
pub use batch::{Batch, BatchOutcome};
pub use binding::ListenerBinding;
pub use context::EventContext;
pub use entry::Listener;
pub(crate) use entry::ListenerEntry;
pub use id::ListenerId;
pub(crate) use job::ListenerJob;
pub use limit::ListenerLimits;
pub(crate) use limit::{LimitPermit, Limiter, Try};
pub use panic::ListenerPanic;
pub(crate) use panic::panic_message;
pub(crate) use pipeline::{PipelineHandle, run_listener};
