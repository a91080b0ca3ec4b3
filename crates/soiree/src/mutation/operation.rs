//! The kind of a mutation, with the Go (ent) string forms.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// What a mutation did, as ent's `Op`: its string forms are ent's
/// (`OpCreate`, `OpUpdateOne`, …), so payloads read the same in both
/// implementations.
///
/// # Examples
///
/// ```
/// use soiree::mutation::Operation;
///
/// assert_eq!(Operation::UpdateOne.to_string(), "OpUpdateOne");
/// assert_eq!("OpDelete".parse::<Operation>().unwrap(), Operation::Delete);
/// assert!("update".parse::<Operation>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Operation {
    /// A row was created.
    #[serde(rename = "OpCreate")]
    Create,
    /// One row, by id, was updated.
    #[serde(rename = "OpUpdateOne")]
    UpdateOne,
    /// Rows matching a filter were updated.
    #[serde(rename = "OpUpdate")]
    Update,
    /// One row, by id, was deleted.
    #[serde(rename = "OpDeleteOne")]
    DeleteOne,
    /// Rows matching a filter were deleted.
    #[serde(rename = "OpDelete")]
    Delete,
}

impl Operation {
    /// The ent string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "OpCreate",
            Self::UpdateOne => "OpUpdateOne",
            Self::Update => "OpUpdate",
            Self::DeleteOne => "OpDeleteOne",
            Self::Delete => "OpDelete",
        }
    }

    /// The lowercase verb `mutation.detected` payloads use (`create`,
    /// `update`, `delete`).
    pub fn verb(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::UpdateOne | Self::Update => "update",
            Self::DeleteOne | Self::Delete => "delete",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Operation {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(match value {
            "OpCreate" => Self::Create,
            "OpUpdateOne" => Self::UpdateOne,
            "OpUpdate" => Self::Update,
            "OpDeleteOne" => Self::DeleteOne,
            "OpDelete" => Self::Delete,
            _ => {
                return Err(Error::InvalidValue {
                    kind: "Operation",
                    value: value.to_owned(),
                });
            }
        })
    }
}
