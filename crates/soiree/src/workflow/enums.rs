//! The workflow enumerations, written as the Go package's `enums` strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// Declares a string enumeration: its variants and their wire strings,
/// `as_str`, `ALL`, `Display`, `FromStr` and serde as that string.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The value as the Go package writes it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $wire, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            /// Parses the exact (case-sensitive) wire string.
            ///
            /// # Errors
            ///
            /// [`Error::InvalidValue`] for any other string.
            fn from_str(value: &str) -> Result<Self, Error> {
                match value {
                    $( $wire => Ok(Self::$variant), )+
                    _ => Err(Error::InvalidValue {
                        kind: stringify!($name),
                        value: value.to_owned(),
                    }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                // A borrowed &str would fail on JSON strings with escapes.
                let value = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                value.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_enum! {
    /// What a workflow action does.
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::workflow::WorkflowActionType;
    ///
    /// let action: WorkflowActionType = "REQUEST_APPROVAL".parse().unwrap();
    /// assert_eq!(action, WorkflowActionType::RequestApproval);
    /// assert_eq!(action.to_string(), "REQUEST_APPROVAL");
    /// assert!("request_approval".parse::<WorkflowActionType>().is_err());
    /// ```
    WorkflowActionType {
        /// Ask the targets for an approval (`REQUEST_APPROVAL`).
        RequestApproval => "REQUEST_APPROVAL",
        /// Send a notification (`NOTIFY`).
        Notify => "NOTIFY",
        /// Call a webhook (`WEBHOOK`).
        Webhook => "WEBHOOK",
        /// Change a field of the object (`UPDATE_FIELD`).
        UpdateField => "UPDATE_FIELD",
        /// Call an integration (`INTEGRATION`).
        Integration => "INTEGRATION",
        /// Move an approval to other targets (`REASSIGN_APPROVAL`).
        ReassignApproval => "REASSIGN_APPROVAL",
        /// Send an email (`SEND_EMAIL`).
        SendEmail => "SEND_EMAIL",
        /// Create an object (`CREATE_OBJECT`).
        CreateObject => "CREATE_OBJECT",
        /// Ask the targets for a review (`REQUEST_REVIEW`).
        RequestReview => "REQUEST_REVIEW",
    }
}

string_enum! {
    /// The state of a workflow instance.
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::workflow::WorkflowInstanceState;
    ///
    /// assert_eq!(WorkflowInstanceState::Completed.as_str(), "COMPLETED");
    /// assert_eq!(serde_json::to_string(&WorkflowInstanceState::Paused).unwrap(), r#""PAUSED""#);
    /// ```
    WorkflowInstanceState {
        /// Still running (`RUNNING`).
        Running => "RUNNING",
        /// Finished successfully (`COMPLETED`).
        Completed => "COMPLETED",
        /// Finished with a failure (`FAILED`).
        Failed => "FAILED",
        /// Waiting to be resumed (`PAUSED`).
        Paused => "PAUSED",
    }
}

string_enum! {
    /// The status of an approval assignment.
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::workflow::WorkflowAssignmentStatus;
    ///
    /// let status: WorkflowAssignmentStatus = serde_json::from_str(r#""CHANGES_REQUESTED""#).unwrap();
    /// assert_eq!(status, WorkflowAssignmentStatus::ChangesRequested);
    /// ```
    WorkflowAssignmentStatus {
        /// Waiting for a decision (`PENDING`).
        Pending => "PENDING",
        /// Approved (`APPROVED`).
        Approved => "APPROVED",
        /// Rejected (`REJECTED`).
        Rejected => "REJECTED",
        /// Sent back with requested changes (`CHANGES_REQUESTED`).
        ChangesRequested => "CHANGES_REQUESTED",
    }
}

string_enum! {
    /// Who an assignment targets.
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::workflow::WorkflowTargetType;
    ///
    /// assert_eq!(WorkflowTargetType::ALL.len(), 4);
    /// assert_eq!(WorkflowTargetType::Resolver.to_string(), "RESOLVER");
    /// ```
    WorkflowTargetType {
        /// Users, by id (`USER`).
        User => "USER",
        /// Groups, by id (`GROUP`).
        Group => "GROUP",
        /// Roles (`ROLE`).
        Role => "ROLE",
        /// Targets computed by a resolver (`RESOLVER`).
        Resolver => "RESOLVER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(expected: &[(T, &str)])
    where
        T: Copy + fmt::Debug + PartialEq + fmt::Display + FromStr<Err = Error> + Serialize,
        T: serde::de::DeserializeOwned,
    {
        for &(value, wire) in expected {
            assert_eq!(value.to_string(), wire);
            assert_eq!(wire.parse::<T>().unwrap(), value);
            let json = serde_json::to_string(&value).unwrap();
            assert_eq!(json, format!("\"{wire}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), value);
        }
    }

    #[test]
    fn action_types_use_the_go_strings() {
        use WorkflowActionType::*;
        let expected = [
            (RequestApproval, "REQUEST_APPROVAL"),
            (Notify, "NOTIFY"),
            (Webhook, "WEBHOOK"),
            (UpdateField, "UPDATE_FIELD"),
            (Integration, "INTEGRATION"),
            (ReassignApproval, "REASSIGN_APPROVAL"),
            (SendEmail, "SEND_EMAIL"),
            (CreateObject, "CREATE_OBJECT"),
            (RequestReview, "REQUEST_REVIEW"),
        ];
        round_trips(&expected);
        assert_eq!(WorkflowActionType::ALL.len(), expected.len());
    }

    #[test]
    fn instance_states_use_the_go_strings() {
        use WorkflowInstanceState::*;
        let expected = [
            (Running, "RUNNING"),
            (Completed, "COMPLETED"),
            (Failed, "FAILED"),
            (Paused, "PAUSED"),
        ];
        round_trips(&expected);
        assert_eq!(WorkflowInstanceState::ALL.len(), expected.len());
    }

    #[test]
    fn assignment_statuses_use_the_go_strings() {
        use WorkflowAssignmentStatus::*;
        let expected = [
            (Pending, "PENDING"),
            (Approved, "APPROVED"),
            (Rejected, "REJECTED"),
            (ChangesRequested, "CHANGES_REQUESTED"),
        ];
        round_trips(&expected);
        assert_eq!(WorkflowAssignmentStatus::ALL.len(), expected.len());
    }

    #[test]
    fn target_types_use_the_go_strings() {
        use WorkflowTargetType::*;
        let expected = [
            (User, "USER"),
            (Group, "GROUP"),
            (Role, "ROLE"),
            (Resolver, "RESOLVER"),
        ];
        round_trips(&expected);
        assert_eq!(WorkflowTargetType::ALL.len(), expected.len());
    }

    #[test]
    fn unknown_strings_are_typed_errors() {
        let err = "approved".parse::<WorkflowAssignmentStatus>().unwrap_err();
        match &err {
            Error::InvalidValue { kind, value } => {
                assert_eq!(*kind, "WorkflowAssignmentStatus");
                assert_eq!(value, "approved");
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            r#"invalid WorkflowAssignmentStatus value "approved""#
        );
        assert!(matches!(
            "".parse::<WorkflowTargetType>(),
            Err(Error::InvalidValue {
                kind: "WorkflowTargetType",
                ..
            })
        ));
        assert!(" NOTIFY".parse::<WorkflowActionType>().is_err());
        assert!("UNKNOWN".parse::<WorkflowInstanceState>().is_err());
    }

    #[test]
    fn json_rejects_unknown_strings_and_non_strings() {
        let err = serde_json::from_str::<WorkflowInstanceState>(r#""DONE""#).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid WorkflowInstanceState value"),
            "{err}"
        );
        assert!(serde_json::from_str::<WorkflowInstanceState>("1").is_err());
        // Escaped strings decode as well as plain ones.
        assert_eq!(
            serde_json::from_str::<WorkflowTargetType>(r#""\u0052OLE""#).unwrap(),
            WorkflowTargetType::Role
        );
    }
}
