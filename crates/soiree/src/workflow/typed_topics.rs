//! The workflow topics as typed topics, each observed under an operation name
//! with origin `listeners`, as in the Go package.

use std::sync::LazyLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::{ObservabilitySpec, TypedTopic};

/// The `origin` label of every workflow topic's listener metrics.
const ORIGIN: &str = "listeners";

fn observed<T>(name: &str, operation: &str) -> TypedTopic<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    TypedTopic::new(name).with_observability(ObservabilitySpec::new(operation, ORIGIN))
}

/// Declares a function returning a process-wide typed topic, built on first use.
macro_rules! typed_topic {
    ($(#[$meta:meta])* $fn_name:ident, $payload:ty, $topic:expr, $operation:literal) => {
        $(#[$meta])*
        ///
        #[doc = concat!("Observed as operation `", $operation, "`, origin `listeners`.")]
        pub fn $fn_name() -> &'static TypedTopic<$payload> {
            static TOPIC: LazyLock<TypedTopic<$payload>> =
                LazyLock::new(|| observed($topic, $operation));
            &TOPIC
        }
    };
}

typed_topic!(
    /// Emitted when a workflow instance is created (the Go package's
    /// `WorkflowTriggeredTopic`).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use soiree::workflow::{WorkflowTriggeredPayload, workflow_triggered_topic};
    /// use soiree::{EventBus, bind_listener};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
    /// let topic = workflow_triggered_topic();
    /// let bus = EventBus::new();
    /// bind_listener(topic, |_ctx, payload: WorkflowTriggeredPayload| async move {
    ///     println!("workflow {} started", payload.instance_id);
    ///     Ok(())
    /// })
    /// .register(&bus)?;
    ///
    /// let event = topic.wrap(WorkflowTriggeredPayload { instance_id: "wfi-1".into(), ..Default::default() })?;
    /// let errors: Vec<_> = bus.emit(topic.name(), event).collect().await;
    /// assert!(errors.is_empty());
    /// # Ok(()) }
    /// ```
    workflow_triggered_topic,
    WorkflowTriggeredPayload,
    TOPIC_WORKFLOW_TRIGGERED,
    "handle_workflow_triggered"
);

typed_topic!(
    /// Emitted when a workflow action begins (the Go package's
    /// `WorkflowActionStartedTopic`).
    workflow_action_started_topic,
    WorkflowActionStartedPayload,
    TOPIC_WORKFLOW_ACTION_STARTED,
    "handle_action_started"
);

typed_topic!(
    /// Emitted when a workflow action finishes (the Go package's
    /// `WorkflowActionCompletedTopic`).
    workflow_action_completed_topic,
    WorkflowActionCompletedPayload,
    TOPIC_WORKFLOW_ACTION_COMPLETED,
    "handle_action_completed"
);

typed_topic!(
    /// Emitted when an approval is assigned (the Go package's
    /// `WorkflowAssignmentCreatedTopic`).
    workflow_assignment_created_topic,
    WorkflowAssignmentCreatedPayload,
    TOPIC_WORKFLOW_ASSIGNMENT_CREATED,
    "handle_assignment_created"
);

typed_topic!(
    /// Emitted when an approval decision is made (the Go package's
    /// `WorkflowAssignmentCompletedTopic`).
    workflow_assignment_completed_topic,
    WorkflowAssignmentCompletedPayload,
    TOPIC_WORKFLOW_ASSIGNMENT_COMPLETED,
    "handle_assignment_completed"
);

typed_topic!(
    /// Emitted when a workflow instance finishes (the Go package's
    /// `WorkflowInstanceCompletedTopic`).
    workflow_instance_completed_topic,
    WorkflowInstanceCompletedPayload,
    TOPIC_WORKFLOW_INSTANCE_COMPLETED,
    "handle_instance_completed"
);

typed_topic!(
    /// Emitted when an assignment's timeout expires (the Go package's
    /// `WorkflowTimeoutExpiredTopic`).
    workflow_timeout_expired_topic,
    WorkflowTimeoutExpiredPayload,
    TOPIC_WORKFLOW_TIMEOUT_EXPIRED,
    "handle_timeout_expired"
);

typed_topic!(
    /// Emitted when a mutation occurs that might trigger workflows (the Go
    /// package's `MutationDetectedTopic`).
    mutation_detected_topic,
    MutationDetectedPayload,
    TOPIC_MUTATION_DETECTED,
    "handle_mutation_detected"
);
