//! What a mutation event carries.

use serde::{Deserialize, Serialize};

use super::Operation;

/// One change to one entity: what a mutation listener receives.
///
/// The application's client (the Go payload's `Client`) is the bus's:
/// [`EventContext::client`](crate::EventContext::client).
///
/// # Examples
///
/// ```
/// use soiree::mutation::{MutationPayload, Operation};
///
/// let payload = MutationPayload::new(Operation::UpdateOne, "OrganizationSetting", "org-setting-1")
///     .with_changed_fields(["billing_email"])
///     .with_actor("user-7");
/// assert_eq!(payload.topic(), "OrganizationSetting");
/// let json = serde_json::to_value(&payload).unwrap();
/// assert_eq!(json["operation"], "OpUpdateOne");
/// assert_eq!(json["entity_id"], "org-setting-1");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MutationPayload {
    /// What was done.
    pub operation: Operation,
    /// The entity's type (ent's schema type, a table or model name): the
    /// event's topic.
    pub entity_type: String,
    /// The entity's id (empty for a bulk operation without one).
    pub entity_id: String,
    /// The fields that changed (all set fields for a create).
    #[serde(default)]
    pub changed_fields: Vec<String>,
    /// The row before the change, when the data layer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    /// The row after the change, when the data layer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
    /// Who made the change (the Go payload's user id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
}

impl MutationPayload {
    /// A mutation of `entity_type` `entity_id`.
    pub fn new(
        operation: Operation,
        entity_type: impl Into<String>,
        entity_id: impl Into<String>,
    ) -> Self {
        Self {
            operation,
            entity_type: entity_type.into(),
            entity_id: entity_id.into(),
            changed_fields: Vec::new(),
            before: None,
            after: None,
            actor_id: None,
        }
    }

    /// The fields that changed.
    #[must_use]
    pub fn with_changed_fields<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.changed_fields = fields.into_iter().map(Into::into).collect();
        self
    }

    /// The row before the change.
    #[must_use]
    pub fn with_before(mut self, before: serde_json::Value) -> Self {
        self.before = Some(before);
        self
    }

    /// The row after the change.
    #[must_use]
    pub fn with_after(mut self, after: serde_json::Value) -> Self {
        self.after = Some(after);
        self
    }

    /// Who made the change.
    #[must_use]
    pub fn with_actor(mut self, actor_id: impl Into<String>) -> Self {
        self.actor_id = Some(actor_id.into());
        self
    }

    /// The topic this mutation is emitted on: [`mutation_topic`](super::mutation_topic)
    /// of its entity type.
    pub fn topic(&self) -> &str {
        &self.entity_type
    }
}
