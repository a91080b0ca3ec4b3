//! The workflow topics, payloads and enums of the Go package.
//!
//! The Go package predefines the topics that its workflow engine emits and
//! listens to. They are here with the same names, the same payloads (and the
//! same JSON, so Go and Rust processes can share a store), and the same
//! observability: every typed topic records
//! `soiree_listener_duration_seconds{operation,origin="listeners",outcome}`.
//!
//! | topic | constant | typed topic | payload |
//! |---|---|---|---|
//! | `workflow.triggered` | [`TOPIC_WORKFLOW_TRIGGERED`] | [`workflow_triggered_topic`] | [`WorkflowTriggeredPayload`] |
//! | `workflow.action.started` | [`TOPIC_WORKFLOW_ACTION_STARTED`] | [`workflow_action_started_topic`] | [`WorkflowActionStartedPayload`] |
//! | `workflow.action.completed` | [`TOPIC_WORKFLOW_ACTION_COMPLETED`] | [`workflow_action_completed_topic`] | [`WorkflowActionCompletedPayload`] |
//! | `workflow.assignment.created` | [`TOPIC_WORKFLOW_ASSIGNMENT_CREATED`] | [`workflow_assignment_created_topic`] | [`WorkflowAssignmentCreatedPayload`] |
//! | `workflow.assignment.completed` | [`TOPIC_WORKFLOW_ASSIGNMENT_COMPLETED`] | [`workflow_assignment_completed_topic`] | [`WorkflowAssignmentCompletedPayload`] |
//! | `workflow.instance.completed` | [`TOPIC_WORKFLOW_INSTANCE_COMPLETED`] | [`workflow_instance_completed_topic`] | [`WorkflowInstanceCompletedPayload`] |
//! | `workflow.timeout.expired` | [`TOPIC_WORKFLOW_TIMEOUT_EXPIRED`] | [`workflow_timeout_expired_topic`] | [`WorkflowTimeoutExpiredPayload`] |
//! | `mutation.detected` | [`TOPIC_MUTATION_DETECTED`] | [`mutation_detected_topic`] | [`MutationDetectedPayload`] |
//!
//! # Examples
//!
//! ```
//! use futures::StreamExt;
//! use soiree::workflow::{WorkflowInstanceCompletedPayload, WorkflowInstanceState, workflow_instance_completed_topic};
//! use soiree::{EventBus, bind_listener};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
//! let topic = workflow_instance_completed_topic();
//! let bus = EventBus::new();
//! bind_listener(topic, |_ctx, done: WorkflowInstanceCompletedPayload| async move {
//!     assert_eq!(done.state, Some(WorkflowInstanceState::Completed));
//!     Ok(())
//! })
//! .register(&bus)?;
//!
//! let event = topic.wrap(WorkflowInstanceCompletedPayload {
//!     instance_id: "wfi-1".into(),
//!     state: Some(WorkflowInstanceState::Completed),
//!     ..Default::default()
//! })?;
//! let errors: Vec<_> = bus.emit(topic.name(), event).collect().await;
//! assert!(errors.is_empty());
//! # Ok(()) }
//! ```

mod enums;
mod go_json;
mod payloads;
mod topics;
mod typed_topics;

pub use enums::{
    WorkflowActionType, WorkflowAssignmentStatus, WorkflowInstanceState, WorkflowTargetType,
};
pub use payloads::{
    MutationDetectedPayload, WorkflowActionCompletedPayload, WorkflowActionStartedPayload,
    WorkflowAssignmentCompletedPayload, WorkflowAssignmentCreatedPayload,
    WorkflowInstanceCompletedPayload, WorkflowTimeoutExpiredPayload, WorkflowTriggeredPayload,
};
pub use topics::{
    TOPIC_MUTATION_DETECTED, TOPIC_WORKFLOW_ACTION_COMPLETED, TOPIC_WORKFLOW_ACTION_STARTED,
    TOPIC_WORKFLOW_ASSIGNMENT_COMPLETED, TOPIC_WORKFLOW_ASSIGNMENT_CREATED,
    TOPIC_WORKFLOW_INSTANCE_COMPLETED, TOPIC_WORKFLOW_TIMEOUT_EXPIRED, TOPIC_WORKFLOW_TRIGGERED,
};
pub use typed_topics::{
    mutation_detected_topic, workflow_action_completed_topic, workflow_action_started_topic,
    workflow_assignment_completed_topic, workflow_assignment_created_topic,
    workflow_instance_completed_topic, workflow_timeout_expired_topic, workflow_triggered_topic,
};
