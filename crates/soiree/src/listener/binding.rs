//! A listener bound to a pattern, ready to register.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::{EventContext, Listener, ListenerId};
use crate::{BoxError, EventBus, Result};

/// A listener together with the pattern it listens on (and optionally a
/// stable name), built by [`bind_listener`](crate::bind_listener) or
/// [`ListenerBinding::new`] and registered with [`ListenerBinding::register`]
/// or [`EventBus::register_listeners`].
///
/// # Examples
///
/// ```
/// use soiree::{EventBus, ListenerBinding};
///
/// let bus = EventBus::new();
/// let binding = ListenerBinding::new("user.created", |_ctx| async { Ok(()) }).named("welcome");
/// let id = binding.register(&bus).unwrap();
/// assert_eq!(id.as_str(), "welcome");
/// ```
#[derive(Clone)]
#[must_use = "a binding does nothing until it is registered on a bus"]
pub struct ListenerBinding {
    pub(crate) pattern: String,
    pub(crate) name: Option<String>,
    pub(crate) listener: Arc<dyn Listener>,
    pub(crate) limits: super::ListenerLimits,
}

impl ListenerBinding {
    /// Binds an async closure or function of an [`EventContext`] to `pattern`.
    pub fn new<F, Fut>(pattern: impl Into<String>, listener: F) -> Self
    where
        F: Fn(EventContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        Self::from_listener(pattern, listener)
    }

    /// Binds any [`Listener`] implementation to `pattern`.
    pub fn from_listener(pattern: impl Into<String>, listener: impl Listener) -> Self {
        Self {
            pattern: pattern.into(),
            name: None,
            listener: Arc::new(listener),
            limits: super::ListenerLimits::default(),
        }
    }

    /// Gives the listener a stable id (see [`EventBus::on_named`]).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Runs at most `n` of this listener's calls at once (retries and
    /// snoozes of a run hold its place). A run past the limit waits off the
    /// bus's workers, and the event's other listeners run meanwhile (see
    /// [`EventBusBuilder::max_parked`](crate::EventBusBuilder::max_parked)).
    ///
    /// With a store that shares limits ([`EventStore::limits`](crate::EventStore::limits):
    /// the SQL and Redis stores, the memory store between the buses sharing
    /// it) the limit holds across every process of the store, for a
    /// listener registered under a stable name ([`named`](Self::named));
    /// else, or without a name, it holds per process.
    ///
    /// A run that awaits an emission needing a place in its own full limit
    /// waits for itself: until the emit's context ends or the bus closes.
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::{EventBus, ListenerBinding};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
    /// let bus = EventBus::new();
    /// ListenerBinding::new("report.requested", |_ctx| async { Ok(()) })
    ///     .named("render-report")
    ///     .max_concurrent(2)
    ///     .register(&bus)?;
    /// bus.close().await
    /// # }
    /// ```
    pub fn max_concurrent(mut self, n: u32) -> Self {
        self.limits.max_concurrent = Some(n);
        self
    }

    /// Runs at most `n` calls at once per value of the event property
    /// `property` (say a tenant or an account id): events of one key wait
    /// for each other, other keys go on. Events without the property share
    /// the key `""`; a value that is not a string is keyed by its JSON text.
    /// Shared across processes as [`max_concurrent`](Self::max_concurrent).
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::{EventBus, ListenerBinding};
    ///
    /// let bus = EventBus::new();
    /// ListenerBinding::new("invoice.issued", |_ctx| async { Ok(()) })
    ///     .named("sync-ledger")
    ///     .max_concurrent_per_key("tenant", 1)
    ///     .register(&bus)
    ///     .unwrap();
    /// ```
    pub fn max_concurrent_per_key(mut self, property: impl Into<String>, n: u32) -> Self {
        self.limits.per_key = Some((property.into(), n));
        self
    }

    /// Starts at most `count` calls per `period`, evenly spaced: one every
    /// `period / count` (rounded up to a millisecond), so that no window of
    /// `period` holds more than `count` starts. A run past the rate waits off the
    /// workers, as with [`max_concurrent`](Self::max_concurrent); retries of
    /// a run are not counted again. Shared across processes as
    /// `max_concurrent`, on the processes' clocks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use soiree::{EventBus, ListenerBinding};
    ///
    /// let bus = EventBus::new();
    /// ListenerBinding::new("sms.send", |_ctx| async { Ok(()) })
    ///     .named("sms-gateway")
    ///     .rate(10, Duration::from_secs(1))
    ///     .register(&bus)
    ///     .unwrap();
    /// ```
    pub fn rate(mut self, count: u32, period: std::time::Duration) -> Self {
        self.limits.rate = Some((count, period));
        self
    }

    /// How long a slot of a shared store is held without renewal (default
    /// 30 s): the bus renews a running call's slots every third of it, and
    /// a process that dies holding one frees it this long after.
    pub fn limit_slot_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.limits.slot_ttl = ttl;
        self
    }

    /// The limits set.
    pub fn limits(&self) -> &super::ListenerLimits {
        &self.limits
    }

    /// The pattern.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Registers the listener on `bus`.
    ///
    /// # Errors
    ///
    /// As [`EventBus::on`]; [`Error::InvalidConfig`](crate::Error::InvalidConfig)
    /// for a limit of 0.
    pub fn register(&self, bus: &EventBus) -> Result<ListenerId> {
        bus.register_binding(self)
    }
}

impl fmt::Debug for ListenerBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerBinding")
            .field("pattern", &self.pattern)
            .field("name", &self.name)
            .field("limits", &self.limits)
            .finish()
    }
}
