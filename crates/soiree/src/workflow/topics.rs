//! The workflow topic names, as in the Go package.

/// A workflow instance was created.
pub const TOPIC_WORKFLOW_TRIGGERED: &str = "workflow.triggered";

/// A workflow action began execution.
pub const TOPIC_WORKFLOW_ACTION_STARTED: &str = "workflow.action.started";

/// A workflow action finished.
pub const TOPIC_WORKFLOW_ACTION_COMPLETED: &str = "workflow.action.completed";

/// An approval was assigned.
pub const TOPIC_WORKFLOW_ASSIGNMENT_CREATED: &str = "workflow.assignment.created";

/// An approval decision was made.
pub const TOPIC_WORKFLOW_ASSIGNMENT_COMPLETED: &str = "workflow.assignment.completed";

/// A workflow instance finished.
pub const TOPIC_WORKFLOW_INSTANCE_COMPLETED: &str = "workflow.instance.completed";

/// An assignment's timeout expired.
pub const TOPIC_WORKFLOW_TIMEOUT_EXPIRED: &str = "workflow.timeout.expired";

/// A mutation occurred that might trigger workflows.
pub const TOPIC_MUTATION_DETECTED: &str = "mutation.detected";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::validate_topic;

    #[test]
    fn names_match_the_go_package_and_are_concrete_topics() {
        let topics = [
            (TOPIC_WORKFLOW_TRIGGERED, "workflow.triggered"),
            (TOPIC_WORKFLOW_ACTION_STARTED, "workflow.action.started"),
            (TOPIC_WORKFLOW_ACTION_COMPLETED, "workflow.action.completed"),
            (
                TOPIC_WORKFLOW_ASSIGNMENT_CREATED,
                "workflow.assignment.created",
            ),
            (
                TOPIC_WORKFLOW_ASSIGNMENT_COMPLETED,
                "workflow.assignment.completed",
            ),
            (
                TOPIC_WORKFLOW_INSTANCE_COMPLETED,
                "workflow.instance.completed",
            ),
            (TOPIC_WORKFLOW_TIMEOUT_EXPIRED, "workflow.timeout.expired"),
            (TOPIC_MUTATION_DETECTED, "mutation.detected"),
        ];
        for (constant, expected) in topics {
            assert_eq!(constant, expected);
            assert!(
                validate_topic(constant).is_ok(),
                "{constant} is not a valid topic"
            );
        }
        assert!(crate::topic_matches(
            "workflow.**",
            TOPIC_WORKFLOW_TIMEOUT_EXPIRED
        ));
        assert!(!crate::topic_matches(
            "workflow.**",
            TOPIC_MUTATION_DETECTED
        ));
    }
}
