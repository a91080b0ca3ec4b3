//! The workflow payloads, with the JSON form Go's `encoding/json` gives the
//! Go package's structs.
//!
//! Those structs have no JSON tags, so their keys are the Go field names
//! (`InstanceID`, `ActionIndex`, …). Decoding is as lenient as Go's: missing
//! keys take their default, unknown keys are ignored, a `null` list is empty
//! and an empty enum string (Go's zero value) is `None`. Unlike Go, keys are
//! matched case-sensitively.

use serde::{Deserialize, Serialize};

use super::go_json::{nullable_vec, optional_enum};
use super::{
    WorkflowActionType, WorkflowAssignmentStatus, WorkflowInstanceState, WorkflowTargetType,
};

/// A workflow instance was created
/// ([`TOPIC_WORKFLOW_TRIGGERED`](super::TOPIC_WORKFLOW_TRIGGERED)).
///
/// # Examples
///
/// ```
/// use soiree::workflow::WorkflowTriggeredPayload;
///
/// let payload = WorkflowTriggeredPayload {
///     instance_id: "wfi-1".into(),
///     object_type: "Control".into(),
///     trigger_changed_fields: vec!["status".into()],
///     ..Default::default()
/// };
/// let json = serde_json::to_value(&payload).unwrap();
/// assert_eq!(json["InstanceID"], "wfi-1");
/// assert_eq!(json["TriggerChangedFields"], serde_json::json!(["status"]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowTriggeredPayload {
    /// The workflow instance.
    #[serde(rename = "InstanceID")]
    pub instance_id: String,
    /// The workflow definition.
    #[serde(rename = "DefinitionID")]
    pub definition_id: String,
    /// The object the workflow acts on.
    #[serde(rename = "ObjectID")]
    pub object_id: String,
    /// The type of that object.
    #[serde(rename = "ObjectType")]
    pub object_type: String,
    /// The event type that triggered the workflow.
    #[serde(rename = "TriggerEventType")]
    pub trigger_event_type: String,
    /// The fields whose change triggered the workflow.
    #[serde(rename = "TriggerChangedFields", deserialize_with = "nullable_vec")]
    pub trigger_changed_fields: Vec<String>,
}

/// A workflow action began
/// ([`TOPIC_WORKFLOW_ACTION_STARTED`](super::TOPIC_WORKFLOW_ACTION_STARTED)).
///
/// # Examples
///
/// ```
/// use soiree::workflow::{WorkflowActionStartedPayload, WorkflowActionType};
///
/// let payload = WorkflowActionStartedPayload {
///     action_index: 2,
///     action_type: Some(WorkflowActionType::SendEmail),
///     ..Default::default()
/// };
/// let json = serde_json::to_value(&payload).unwrap();
/// assert_eq!(json["ActionIndex"], 2);
/// assert_eq!(json["ActionType"], "SEND_EMAIL");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowActionStartedPayload {
    /// The workflow instance.
    #[serde(rename = "InstanceID")]
    pub instance_id: String,
    /// The action's position in the workflow (a Go `int`).
    #[serde(rename = "ActionIndex")]
    pub action_index: i64,
    /// What the action does (`None` is Go's zero value, written `""`).
    #[serde(rename = "ActionType", with = "optional_enum")]
    pub action_type: Option<WorkflowActionType>,
    /// The object the action acts on.
    #[serde(rename = "ObjectID")]
    pub object_id: String,
    /// The type of that object.
    #[serde(rename = "ObjectType")]
    pub object_type: String,
}

/// A workflow action finished
/// ([`TOPIC_WORKFLOW_ACTION_COMPLETED`](super::TOPIC_WORKFLOW_ACTION_COMPLETED)).
///
/// # Examples
///
/// ```
/// use soiree::workflow::WorkflowActionCompletedPayload;
///
/// let payload = WorkflowActionCompletedPayload {
///     success: false,
///     error_message: "webhook returned 500".into(),
///     ..Default::default()
/// };
/// let json = serde_json::to_value(&payload).unwrap();
/// assert_eq!(json["ErrorMessage"], "webhook returned 500");
/// assert_eq!(json["ActionType"], "");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowActionCompletedPayload {
    /// The workflow instance.
    #[serde(rename = "InstanceID")]
    pub instance_id: String,
    /// The action's position in the workflow (a Go `int`).
    #[serde(rename = "ActionIndex")]
    pub action_index: i64,
    /// What the action did (`None` is Go's zero value, written `""`).
    #[serde(rename = "ActionType", with = "optional_enum")]
    pub action_type: Option<WorkflowActionType>,
    /// The object the action acted on.
    #[serde(rename = "ObjectID")]
    pub object_id: String,
    /// The type of that object.
    #[serde(rename = "ObjectType")]
    pub object_type: String,
    /// Whether the action succeeded.
    #[serde(rename = "Success")]
    pub success: bool,
    /// Whether the action was skipped.
    #[serde(rename = "Skipped")]
    pub skipped: bool,
    /// Why the action failed, if it did.
    #[serde(rename = "ErrorMessage")]
    pub error_message: String,
}

/// An approval was assigned
/// ([`TOPIC_WORKFLOW_ASSIGNMENT_CREATED`](super::TOPIC_WORKFLOW_ASSIGNMENT_CREATED)).
///
/// # Examples
///
/// ```
/// use soiree::workflow::{WorkflowAssignmentCreatedPayload, WorkflowTargetType};
///
/// let payload = WorkflowAssignmentCreatedPayload {
///     target_type: Some(WorkflowTargetType::Group),
///     target_ids: vec!["grp-1".into()],
///     ..Default::default()
/// };
/// let json = serde_json::to_value(&payload).unwrap();
/// assert_eq!(json["TargetIDs"], serde_json::json!(["grp-1"]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowAssignmentCreatedPayload {
    /// The assignment.
    #[serde(rename = "AssignmentID")]
    pub assignment_id: String,
    /// The workflow instance.
    #[serde(rename = "InstanceID")]
    pub instance_id: String,
    /// What kind of target the assignment has (`None` is Go's zero value,
    /// written `""`).
    #[serde(rename = "TargetType", with = "optional_enum")]
    pub target_type: Option<WorkflowTargetType>,
    /// The targets.
    #[serde(rename = "TargetIDs", deserialize_with = "nullable_vec")]
    pub target_ids: Vec<String>,
    /// The object the assignment is about.
    #[serde(rename = "ObjectID")]
    pub object_id: String,
    /// The type of that object.
    #[serde(rename = "ObjectType")]
    pub object_type: String,
}

/// An approval decision was made
/// ([`TOPIC_WORKFLOW_ASSIGNMENT_COMPLETED`](super::TOPIC_WORKFLOW_ASSIGNMENT_COMPLETED)).
///
/// # Examples
///
/// ```
/// use soiree::workflow::{WorkflowAssignmentCompletedPayload, WorkflowAssignmentStatus};
///
/// let json = serde_json::json!({ "AssignmentID": "asg-1", "Status": "APPROVED", "CompletedBy": "usr-1" });
/// let payload: WorkflowAssignmentCompletedPayload = serde_json::from_value(json).unwrap();
/// assert_eq!(payload.status, Some(WorkflowAssignmentStatus::Approved));
/// assert_eq!(payload.completed_by, "usr-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowAssignmentCompletedPayload {
    /// The assignment.
    #[serde(rename = "AssignmentID")]
    pub assignment_id: String,
    /// The workflow instance.
    #[serde(rename = "InstanceID")]
    pub instance_id: String,
    /// The assignment's status after the decision (`None` is Go's zero
    /// value, written `""`).
    #[serde(rename = "Status", with = "optional_enum")]
    pub status: Option<WorkflowAssignmentStatus>,
    /// The user who decided.
    #[serde(rename = "CompletedBy")]
    pub completed_by: String,
    /// The object the assignment is about.
    #[serde(rename = "ObjectID")]
    pub object_id: String,
    /// The type of that object.
    #[serde(rename = "ObjectType")]
    pub object_type: String,
}

/// A workflow instance finished
/// ([`TOPIC_WORKFLOW_INSTANCE_COMPLETED`](super::TOPIC_WORKFLOW_INSTANCE_COMPLETED)).
///
/// # Examples
///
/// ```
/// use soiree::workflow::{WorkflowInstanceCompletedPayload, WorkflowInstanceState};
///
/// let payload = WorkflowInstanceCompletedPayload {
///     state: Some(WorkflowInstanceState::Failed),
///     ..Default::default()
/// };
/// assert_eq!(serde_json::to_value(&payload).unwrap()["State"], "FAILED");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowInstanceCompletedPayload {
    /// The workflow instance.
    #[serde(rename = "InstanceID")]
    pub instance_id: String,
    /// The instance's final state (`None` is Go's zero value, written `""`).
    #[serde(rename = "State", with = "optional_enum")]
    pub state: Option<WorkflowInstanceState>,
    /// The object the workflow acted on.
    #[serde(rename = "ObjectID")]
    pub object_id: String,
    /// The type of that object.
    #[serde(rename = "ObjectType")]
    pub object_type: String,
}

/// An assignment's timeout expired
/// ([`TOPIC_WORKFLOW_TIMEOUT_EXPIRED`](super::TOPIC_WORKFLOW_TIMEOUT_EXPIRED)).
///
/// # Examples
///
/// ```
/// use soiree::workflow::WorkflowTimeoutExpiredPayload;
///
/// let payload = WorkflowTimeoutExpiredPayload { assignment_id: "asg-1".into(), ..Default::default() };
/// assert_eq!(serde_json::to_value(&payload).unwrap()["AssignmentID"], "asg-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowTimeoutExpiredPayload {
    /// The workflow instance.
    #[serde(rename = "InstanceID")]
    pub instance_id: String,
    /// The assignment that timed out.
    #[serde(rename = "AssignmentID")]
    pub assignment_id: String,
    /// The object the timeout is about.
    #[serde(rename = "ObjectID")]
    pub object_id: String,
    /// The type of that object.
    #[serde(rename = "ObjectType")]
    pub object_type: String,
}

/// A mutation occurred that might trigger workflows
/// ([`TOPIC_MUTATION_DETECTED`](super::TOPIC_MUTATION_DETECTED)).
///
/// # Examples
///
/// ```
/// use soiree::workflow::MutationDetectedPayload;
///
/// let payload = MutationDetectedPayload {
///     schema_type: "Control".into(),
///     operation: "update".into(),
///     changed_fields: vec!["status".into()],
///     ..Default::default()
/// };
/// let json = serde_json::to_value(&payload).unwrap();
/// assert_eq!(json["SchemaType"], "Control");
/// assert_eq!(json["ChangedFields"], serde_json::json!(["status"]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MutationDetectedPayload {
    /// The schema type that was mutated.
    #[serde(rename = "SchemaType")]
    pub schema_type: String,
    /// The object that was mutated.
    #[serde(rename = "ObjectID")]
    pub object_id: String,
    /// The operation performed (for example `update` or `delete`).
    #[serde(rename = "Operation")]
    pub operation: String,
    /// The fields that changed.
    #[serde(rename = "ChangedFields", deserialize_with = "nullable_vec")]
    pub changed_fields: Vec<String>,
    /// The user who performed the mutation.
    #[serde(rename = "UserID")]
    pub user_id: String,
}
