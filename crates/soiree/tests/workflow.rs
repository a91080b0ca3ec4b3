//! The workflow topics: Go-compatible JSON, enum strings, typed topics and
//! delivery through a bus.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use soiree::workflow::*;
use soiree::{Event, EventBus, MemoryStore, MetricsRegistry, Payload, TypedTopic, bind_listener};

/// Serializes `value`, checks it is exactly `expected` (same keys, same
/// values), and checks it reads back unchanged.
fn assert_go_json<T>(value: &T, expected: Value)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let json = serde_json::to_value(value).unwrap();
    assert_eq!(json, expected);
    let back: T = serde_json::from_value(json).unwrap();
    assert_eq!(&back, value);
    let text = serde_json::to_string(value).unwrap();
    assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), value);
}

fn triggered() -> WorkflowTriggeredPayload {
    WorkflowTriggeredPayload {
        instance_id: "wfi-1".into(),
        definition_id: "wfd-1".into(),
        object_id: "ctl-1".into(),
        object_type: "Control".into(),
        trigger_event_type: "UPDATE".into(),
        trigger_changed_fields: vec!["status".into(), "owner_id".into()],
    }
}

fn action_started() -> WorkflowActionStartedPayload {
    WorkflowActionStartedPayload {
        instance_id: "wfi-1".into(),
        action_index: 3,
        action_type: Some(WorkflowActionType::RequestApproval),
        object_id: "ctl-1".into(),
        object_type: "Control".into(),
    }
}

fn action_completed() -> WorkflowActionCompletedPayload {
    WorkflowActionCompletedPayload {
        instance_id: "wfi-1".into(),
        action_index: 4,
        action_type: Some(WorkflowActionType::Webhook),
        object_id: "ctl-1".into(),
        object_type: "Control".into(),
        success: false,
        skipped: true,
        error_message: "endpoint returned 503".into(),
    }
}

fn assignment_created() -> WorkflowAssignmentCreatedPayload {
    WorkflowAssignmentCreatedPayload {
        assignment_id: "asg-1".into(),
        instance_id: "wfi-1".into(),
        target_type: Some(WorkflowTargetType::Group),
        target_ids: vec!["grp-1".into(), "grp-2".into()],
        object_id: "pol-1".into(),
        object_type: "InternalPolicy".into(),
    }
}

fn assignment_completed() -> WorkflowAssignmentCompletedPayload {
    WorkflowAssignmentCompletedPayload {
        assignment_id: "asg-1".into(),
        instance_id: "wfi-1".into(),
        status: Some(WorkflowAssignmentStatus::ChangesRequested),
        completed_by: "usr-1".into(),
        object_id: "pol-1".into(),
        object_type: "InternalPolicy".into(),
    }
}

fn instance_completed() -> WorkflowInstanceCompletedPayload {
    WorkflowInstanceCompletedPayload {
        instance_id: "wfi-1".into(),
        state: Some(WorkflowInstanceState::Failed),
        object_id: "ctl-1".into(),
        object_type: "Control".into(),
    }
}

fn timeout_expired() -> WorkflowTimeoutExpiredPayload {
    WorkflowTimeoutExpiredPayload {
        instance_id: "wfi-1".into(),
        assignment_id: "asg-9".into(),
        object_id: "ctl-1".into(),
        object_type: "Control".into(),
    }
}

fn mutation_detected() -> MutationDetectedPayload {
    MutationDetectedPayload {
        schema_type: "Control".into(),
        object_id: "ctl-1".into(),
        operation: "update".into(),
        changed_fields: vec!["status".into()],
        user_id: "usr-1".into(),
    }
}

#[test]
fn payloads_use_the_go_field_names() {
    assert_go_json(
        &triggered(),
        json!({
            "InstanceID": "wfi-1",
            "DefinitionID": "wfd-1",
            "ObjectID": "ctl-1",
            "ObjectType": "Control",
            "TriggerEventType": "UPDATE",
            "TriggerChangedFields": ["status", "owner_id"],
        }),
    );
    assert_go_json(
        &action_started(),
        json!({
            "InstanceID": "wfi-1",
            "ActionIndex": 3,
            "ActionType": "REQUEST_APPROVAL",
            "ObjectID": "ctl-1",
            "ObjectType": "Control",
        }),
    );
    assert_go_json(
        &action_completed(),
        json!({
            "InstanceID": "wfi-1",
            "ActionIndex": 4,
            "ActionType": "WEBHOOK",
            "ObjectID": "ctl-1",
            "ObjectType": "Control",
            "Success": false,
            "Skipped": true,
            "ErrorMessage": "endpoint returned 503",
        }),
    );
    assert_go_json(
        &assignment_created(),
        json!({
            "AssignmentID": "asg-1",
            "InstanceID": "wfi-1",
            "TargetType": "GROUP",
            "TargetIDs": ["grp-1", "grp-2"],
            "ObjectID": "pol-1",
            "ObjectType": "InternalPolicy",
        }),
    );
    assert_go_json(
        &assignment_completed(),
        json!({
            "AssignmentID": "asg-1",
            "InstanceID": "wfi-1",
            "Status": "CHANGES_REQUESTED",
            "CompletedBy": "usr-1",
            "ObjectID": "pol-1",
            "ObjectType": "InternalPolicy",
        }),
    );
    assert_go_json(
        &instance_completed(),
        json!({
            "InstanceID": "wfi-1",
            "State": "FAILED",
            "ObjectID": "ctl-1",
            "ObjectType": "Control",
        }),
    );
    assert_go_json(
        &timeout_expired(),
        json!({
            "InstanceID": "wfi-1",
            "AssignmentID": "asg-9",
            "ObjectID": "ctl-1",
            "ObjectType": "Control",
        }),
    );
    assert_go_json(
        &mutation_detected(),
        json!({
            "SchemaType": "Control",
            "ObjectID": "ctl-1",
            "Operation": "update",
            "ChangedFields": ["status"],
            "UserID": "usr-1",
        }),
    );
}

#[test]
fn zero_values_serialize_like_go_zero_values() {
    assert_go_json(
        &WorkflowActionStartedPayload::default(),
        json!({
            "InstanceID": "",
            "ActionIndex": 0,
            "ActionType": "",
            "ObjectID": "",
            "ObjectType": "",
        }),
    );
    assert_go_json(
        &WorkflowAssignmentCompletedPayload::default(),
        json!({
            "AssignmentID": "",
            "InstanceID": "",
            "Status": "",
            "CompletedBy": "",
            "ObjectID": "",
            "ObjectType": "",
        }),
    );
    assert_go_json(
        &WorkflowInstanceCompletedPayload::default(),
        json!({ "InstanceID": "", "State": "", "ObjectID": "", "ObjectType": "" }),
    );
    let created = serde_json::to_value(WorkflowAssignmentCreatedPayload::default()).unwrap();
    assert_eq!(created["TargetType"], "");
    assert_eq!(created["TargetIDs"], json!([]));
}

#[test]
fn decoding_is_as_lenient_as_go() {
    // What Go writes for a struct with nil slices and zero enums.
    let go = json!({
        "AssignmentID": "asg-1",
        "InstanceID": "",
        "TargetType": "",
        "TargetIDs": null,
        "ObjectID": "",
        "ObjectType": "",
    });
    let created: WorkflowAssignmentCreatedPayload = serde_json::from_value(go).unwrap();
    assert_eq!(
        created,
        WorkflowAssignmentCreatedPayload {
            assignment_id: "asg-1".into(),
            ..Default::default()
        }
    );

    // Missing keys take their zero value, unknown keys are ignored, and a
    // null enum is unset.
    let sparse = json!({ "ChangedFields": null, "Extra": 1, "UserID": "usr-2" });
    let mutation: MutationDetectedPayload = serde_json::from_value(sparse).unwrap();
    assert_eq!(mutation.user_id, "usr-2");
    assert!(mutation.changed_fields.is_empty());
    let triggered: WorkflowTriggeredPayload =
        serde_json::from_value(json!({ "TriggerChangedFields": null })).unwrap();
    assert_eq!(triggered, WorkflowTriggeredPayload::default());
    let state: WorkflowInstanceCompletedPayload =
        serde_json::from_value(json!({ "State": null })).unwrap();
    assert_eq!(state.state, None);

    // Keys are the Go field names: snake_case keys are unknown, hence ignored.
    let snake: WorkflowTimeoutExpiredPayload =
        serde_json::from_value(json!({ "instance_id": "wfi-1" })).unwrap();
    assert_eq!(snake.instance_id, "");
}

#[test]
fn decoding_rejects_values_go_would_not_write() {
    let err = serde_json::from_value::<WorkflowActionStartedPayload>(
        json!({ "ActionType": "request_approval" }),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains(r#"invalid WorkflowActionType value "request_approval""#),
        "{err}"
    );
    assert!(
        serde_json::from_value::<WorkflowAssignmentCompletedPayload>(json!({ "Status": 1 }))
            .is_err()
    );
    assert!(
        serde_json::from_value::<WorkflowActionCompletedPayload>(json!({ "ActionIndex": "1" }))
            .is_err()
    );
    assert!(
        serde_json::from_value::<WorkflowTriggeredPayload>(json!({ "TriggerChangedFields": "a" }))
            .is_err()
    );
}

#[test]
fn enums_round_trip_through_display_from_str_and_json() {
    fn check<T>(all: &[T])
    where
        T: Copy + Debug + PartialEq + std::fmt::Display + std::str::FromStr + Serialize,
        T: DeserializeOwned,
        T::Err: Debug,
    {
        for &value in all {
            let text = value.to_string();
            assert!(
                text.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{text}"
            );
            assert_eq!(text.parse::<T>().unwrap(), value);
            assert_eq!(serde_json::to_value(value).unwrap(), Value::String(text));
        }
    }
    check(WorkflowActionType::ALL);
    check(WorkflowInstanceState::ALL);
    check(WorkflowAssignmentStatus::ALL);
    check(WorkflowTargetType::ALL);
    assert_eq!(WorkflowActionType::ALL.len(), 9);
    assert_eq!(
        WorkflowActionType::ReassignApproval.as_str(),
        "REASSIGN_APPROVAL"
    );

    let err = "Pending".parse::<WorkflowAssignmentStatus>().unwrap_err();
    assert!(matches!(
        &err,
        soiree::Error::InvalidValue { kind: "WorkflowAssignmentStatus", value } if value == "Pending"
    ));
}

fn assert_topic<T: Send + Sync + 'static>(topic: &TypedTopic<T>, name: &str, operation: &str) {
    assert_eq!(topic.name(), name);
    let spec = topic.observability().expect("workflow topics are observed");
    assert_eq!(spec.operation, operation);
    assert_eq!(spec.origin, "listeners");
    assert!(spec.trigger.is_none());
}

#[test]
fn typed_topics_carry_the_go_names_and_specs() {
    assert_topic(
        workflow_triggered_topic(),
        TOPIC_WORKFLOW_TRIGGERED,
        "handle_workflow_triggered",
    );
    assert_topic(
        workflow_action_started_topic(),
        TOPIC_WORKFLOW_ACTION_STARTED,
        "handle_action_started",
    );
    assert_topic(
        workflow_action_completed_topic(),
        TOPIC_WORKFLOW_ACTION_COMPLETED,
        "handle_action_completed",
    );
    assert_topic(
        workflow_assignment_created_topic(),
        TOPIC_WORKFLOW_ASSIGNMENT_CREATED,
        "handle_assignment_created",
    );
    assert_topic(
        workflow_assignment_completed_topic(),
        TOPIC_WORKFLOW_ASSIGNMENT_COMPLETED,
        "handle_assignment_completed",
    );
    assert_topic(
        workflow_instance_completed_topic(),
        TOPIC_WORKFLOW_INSTANCE_COMPLETED,
        "handle_instance_completed",
    );
    assert_topic(
        workflow_timeout_expired_topic(),
        TOPIC_WORKFLOW_TIMEOUT_EXPIRED,
        "handle_timeout_expired",
    );
    assert_topic(
        mutation_detected_topic(),
        TOPIC_MUTATION_DETECTED,
        "handle_mutation_detected",
    );
    // The same topic every time.
    assert!(std::ptr::eq(
        workflow_triggered_topic(),
        workflow_triggered_topic()
    ));
}

/// Binds a listener to `topic` that records what it receives; returns the
/// record.
fn record<T>(bus: &EventBus, topic: &TypedTopic<T>) -> Arc<Mutex<Vec<T>>>
where
    T: Clone + Send + Sync + 'static,
{
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    bind_listener(topic, move |_ctx, payload: T| {
        let sink = Arc::clone(&sink);
        async move {
            sink.lock().unwrap().push(payload);
            Ok(())
        }
    })
    .register(bus)
    .unwrap();
    seen
}

/// Emits `payload` wrapped by `topic` and as JSON (as a store gives it back),
/// and checks a bound listener received it both times.
async fn deliver<T>(bus: &EventBus, topic: &TypedTopic<T>, payload: T)
where
    T: Serialize + Clone + PartialEq + Debug + Send + Sync + 'static,
{
    let seen = record(bus, topic);

    let event = topic.wrap(payload.clone()).unwrap();
    let errors: Vec<_> = bus.emit(topic.name(), event).collect().await;
    assert!(errors.is_empty(), "{errors:?}");

    let stored = Event::with_payload(
        topic.name(),
        Payload::from_json(serde_json::to_value(&payload).unwrap()),
    );
    let errors: Vec<_> = bus.emit(topic.name(), stored).collect().await;
    assert!(errors.is_empty(), "{errors:?}");

    assert_eq!(*seen.lock().unwrap(), vec![payload.clone(), payload]);
}

#[tokio::test]
async fn every_typed_topic_delivers_live_and_json_payloads() {
    let registry = MetricsRegistry::new();
    let bus = EventBus::builder()
        .metrics_registry(registry.clone())
        .build()
        .unwrap();

    deliver(&bus, workflow_triggered_topic(), triggered()).await;
    deliver(&bus, workflow_action_started_topic(), action_started()).await;
    deliver(&bus, workflow_action_completed_topic(), action_completed()).await;
    deliver(
        &bus,
        workflow_assignment_created_topic(),
        assignment_created(),
    )
    .await;
    deliver(
        &bus,
        workflow_assignment_completed_topic(),
        assignment_completed(),
    )
    .await;
    deliver(
        &bus,
        workflow_instance_completed_topic(),
        instance_completed(),
    )
    .await;
    deliver(&bus, workflow_timeout_expired_topic(), timeout_expired()).await;
    deliver(&bus, mutation_detected_topic(), mutation_detected()).await;

    // Each delivery was timed under its topic's operation.
    let text = registry.encode();
    for operation in [
        "handle_workflow_triggered",
        "handle_action_started",
        "handle_action_completed",
        "handle_assignment_created",
        "handle_assignment_completed",
        "handle_instance_completed",
        "handle_timeout_expired",
        "handle_mutation_detected",
    ] {
        let count = format!(
            r#"soiree_listener_duration_seconds_count{{operation="{operation}",origin="listeners",outcome="success"}} 2"#
        );
        assert!(text.contains(&count), "missing {count} in\n{text}");
    }
    bus.close().await.unwrap();
}

#[tokio::test]
async fn a_payload_of_the_wrong_shape_fails_the_listener() {
    let bus = EventBus::new();
    let topic = workflow_instance_completed_topic();
    let seen = record(&bus, topic);

    let bad = Event::with_payload(
        topic.name(),
        Payload::from_json(json!({ "State": "FINISHED" })),
    );
    let errors: Vec<_> = bus.emit(topic.name(), bad).collect().await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0].to_string();
    assert!(message.contains("payload type mismatch"), "{message}");
    assert!(seen.lock().unwrap().is_empty());
    bus.close().await.unwrap();
}

#[tokio::test]
async fn payloads_survive_a_queue_store() {
    let bus = EventBus::builder()
        .store(MemoryStore::queue())
        .poll_wait(Duration::from_millis(20))
        .build()
        .unwrap();
    let topic = workflow_assignment_completed_topic();
    let seen = record(&bus, topic);
    bus.start().unwrap();

    let errors: Vec<_> = bus
        .emit(topic.name(), topic.wrap(assignment_completed()).unwrap())
        .collect()
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    // Bounded: the consumer polls every 20 ms; 5 s is far beyond need.
    tokio::time::timeout(Duration::from_secs(5), bus.wait_for_idle())
        .await
        .expect("the queue drains");

    assert_eq!(*seen.lock().unwrap(), vec![assignment_completed()]);
    bus.close().await.unwrap();
}
