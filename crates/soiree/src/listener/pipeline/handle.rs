//! What running a listener needs of its bus, gathered once per bus: the
//! pipeline's only view of the bus's configuration.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::ListenerMetrics;
use crate::{EventStore, PanicHandler, RetryPolicy};

/// The bus's settings and services that the listener pipeline and
/// [`EventContext`](crate::EventContext) use, and nothing else of the bus.
pub(crate) struct PipelineHandle {
    /// Where each attempt's result is saved; `None`: not saved.
    pub(crate) store: Option<Arc<dyn EventStore>>,
    /// Attempts and delays for a failing listener.
    pub(crate) retry: RetryPolicy,
    /// Cancels a listener call that runs longer.
    pub(crate) listener_timeout: Option<Duration>,
    /// Told about every caught listener panic.
    pub(crate) panic_handler: Option<PanicHandler>,
    /// Cancelled when the bus shuts down: a wait between retries ends.
    pub(crate) shutdown: CancellationToken,
    /// The bus's client, for [`EventContext::client`](crate::EventContext::client).
    pub(crate) client: Option<Arc<dyn Any + Send + Sync>>,
    /// The typed topics' listener metrics.
    pub(crate) metrics: ListenerMetrics,
}

impl fmt::Debug for PipelineHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineHandle")
            .field("store", &self.store.is_some())
            .field("retry", &self.retry)
            .field("listener_timeout", &self.listener_timeout)
            .finish_non_exhaustive()
    }
}
