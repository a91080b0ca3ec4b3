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
        }
    }

    /// Gives the listener a stable id (see [`EventBus::on_named`]).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The pattern.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Registers the listener on `bus`.
    ///
    /// # Errors
    ///
    /// As [`EventBus::on`].
    pub fn register(&self, bus: &EventBus) -> Result<ListenerId> {
        bus.register_binding(self)
    }
}

impl fmt::Debug for ListenerBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerBinding")
            .field("pattern", &self.pattern)
            .field("name", &self.name)
            .finish()
    }
}
