//! Topic names, wildcard patterns, and the index that maps an emitted topic to
//! the listeners that hear it.
//!
//! A topic is a dot-separated name such as `user.created`. A pattern may use
//! `*` for exactly one segment and `**` for zero or more segments; a trailing
//! `**` after another segment needs at least one (`event.**` does not match
//! `event`).

mod index;
mod matcher;
mod name;
mod specificity;

pub(crate) use index::{RemoveError, SharedRoute, TopicIndex};
pub use matcher::topic_matches;
pub(crate) use name::{validate_pattern, validate_topic};
pub(crate) use specificity::Specificity;
