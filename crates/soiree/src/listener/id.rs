//! Listener ids.

use std::fmt;
use std::sync::Arc;

/// A listener's id: generated on registration, or the stable name given to
/// [`EventBus::on_named`](crate::EventBus::on_named).
///
/// # Examples
///
/// ```
/// use soiree::EventBus;
///
/// let bus = EventBus::new();
/// let id = bus.on_named("send-welcome", "user.created", |_ctx| async { Ok(()) }).unwrap();
/// assert_eq!(id.as_str(), "send-welcome");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(Arc<str>);

impl ListenerId {
    pub(crate) fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ListenerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ListenerId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

impl From<String> for ListenerId {
    fn from(id: String) -> Self {
        Self::new(id)
    }
}

impl AsRef<str> for ListenerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ListenerId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ListenerId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}
