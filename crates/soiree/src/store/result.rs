//! The stored outcome of a listener attempt.

use serde::{Deserialize, Serialize};

/// The outcome of one listener attempt on one event, in the Go package's JSON
/// shape (`topic`, `event_id`, `handler_id`, `error`) plus the attempt number.
///
/// # Examples
///
/// ```
/// use soiree::StoredResult;
///
/// let ok = StoredResult::new("user.created", "evt-1", "welcome", 1, None);
/// assert!(ok.succeeded());
/// let json = serde_json::to_value(&ok).unwrap();
/// assert_eq!(json["handler_id"], "welcome");
/// assert!(json.get("error").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResult {
    /// The topic of the event that was processed.
    pub topic: String,
    /// The event's idempotency key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub event_id: String,
    /// The listener's id.
    pub handler_id: String,
    /// The error, when the attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Which attempt this was, from 1.
    #[serde(default)]
    pub attempt: u32,
}

impl StoredResult {
    /// A result record.
    pub fn new(
        topic: impl Into<String>,
        event_id: impl Into<String>,
        handler_id: impl Into<String>,
        attempt: u32,
        error: Option<String>,
    ) -> Self {
        Self {
            topic: topic.into(),
            event_id: event_id.into(),
            handler_id: handler_id.into(),
            error,
            attempt,
        }
    }

    /// Reports whether the attempt succeeded.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    /// Reports whether the listener snoozed
    /// ([`Snooze`](crate::Snooze)): its error starts with
    /// [`SNOOZED_PREFIX`](crate::SNOOZED_PREFIX). Not a success (a snoozed
    /// listener has not handled the event) and not a failure.
    pub fn is_snoozed(&self) -> bool {
        self.error
            .as_deref()
            .is_some_and(|error| error.starts_with(crate::SNOOZED_PREFIX))
    }

    /// The outcome in one word: `succeeded`, `snoozed` or `failed`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use soiree::{Snooze, StoredResult};
    ///
    /// let snoozed = Snooze::after(Duration::from_secs(5)).to_string();
    /// let result = StoredResult::new("report.build", "evt-1", "builder", 1, Some(snoozed));
    /// assert_eq!(result.outcome(), "snoozed");
    /// assert!(!result.succeeded());
    /// ```
    pub fn outcome(&self) -> &'static str {
        if self.succeeded() {
            "succeeded"
        } else if self.is_snoozed() {
            "snoozed"
        } else {
            "failed"
        }
    }
}
