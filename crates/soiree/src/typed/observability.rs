//! Spans and timing for the listeners of a typed topic.

use std::fmt;
use std::sync::Arc;

use crate::EventContext;

type TriggerFn<T> = Arc<dyn Fn(&EventContext, &T) -> String + Send + Sync>;

/// What to record about each run of a typed topic's listeners: a tracing span
/// named `soiree.observed` with `operation`, `origin` and `trigger` fields, and
/// the `soiree_listener_duration_seconds{operation,origin,outcome}` histogram
/// (`outcome` is `success`, `error` or `panic`).
///
/// # Examples
///
/// ```
/// use soiree::{ObservabilitySpec, TypedTopic};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Signup { plan: String }
///
/// let topic = TypedTopic::<Signup>::new("user.signup").with_observability(
///     ObservabilitySpec::new("handle_signup", "listeners")
///         .with_trigger(|_ctx, signup: &Signup| signup.plan.clone()),
/// );
/// assert_eq!(topic.observability().unwrap().operation, "handle_signup");
/// ```
pub struct ObservabilitySpec<T> {
    /// The operation name recorded (`operation` label).
    pub operation: String,
    /// The component that observes (`origin` label).
    pub origin: String,
    /// Derives the span's `trigger` field from the event (default: the topic).
    pub trigger: Option<TriggerFn<T>>,
}

impl<T> ObservabilitySpec<T> {
    /// A spec with the given operation and origin.
    pub fn new(operation: impl Into<String>, origin: impl Into<String>) -> Self {
        Self {
            operation: operation.into(),
            origin: origin.into(),
            trigger: None,
        }
    }

    /// Sets how the `trigger` span field is derived.
    #[must_use]
    pub fn with_trigger(
        mut self,
        trigger: impl Fn(&EventContext, &T) -> String + Send + Sync + 'static,
    ) -> Self {
        self.trigger = Some(Arc::new(trigger));
        self
    }
}

impl<T> Clone for ObservabilitySpec<T> {
    fn clone(&self) -> Self {
        Self {
            operation: self.operation.clone(),
            origin: self.origin.clone(),
            trigger: self.trigger.clone(),
        }
    }
}

impl<T> fmt::Debug for ObservabilitySpec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservabilitySpec")
            .field("operation", &self.operation)
            .field("origin", &self.origin)
            .field("trigger", &self.trigger.is_some())
            .finish()
    }
}
