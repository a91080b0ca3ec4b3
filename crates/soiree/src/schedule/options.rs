//! What an event carries besides its topic, payload and properties: a due
//! time and a unique key. Boxed in the event, so that an event without
//! either costs one pointer and one branch.

use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EventOptions {
    pub(crate) due_at: Option<SystemTime>,
    pub(crate) unique: Option<(String, Duration)>,
}

impl EventOptions {
    pub(crate) fn is_empty(&self) -> bool {
        self.due_at.is_none() && self.unique.is_none()
    }
}
