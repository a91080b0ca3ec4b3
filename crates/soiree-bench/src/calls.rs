//! The no-op listener of the throughput scenarios, counting its calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::{Ready, ready};
use soiree::{BoxError, EventContext};

/// A count of listener calls, shared by the listeners it makes.
#[derive(Debug, Clone)]
pub(crate) struct Calls(Arc<AtomicU64>);

impl Default for Calls {
    /// A count from 0, shown as the running scenario's progress.
    fn default() -> Self {
        let calls = Arc::new(AtomicU64::new(0));
        super::progress::watch(&calls);
        Self(calls)
    }
}

impl Calls {
    /// A listener that does nothing but count its call here. The count is
    /// taken before the future is made, so the future holds nothing.
    pub(crate) fn listener(
        &self,
    ) -> impl Fn(EventContext) -> Ready<Result<(), BoxError>> + Send + Sync + 'static {
        let calls = Arc::clone(&self.0);
        move |_ctx| {
            calls.fetch_add(1, Ordering::Relaxed);
            ready(Ok(()))
        }
    }

    /// The calls so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
