//! Topic names, wildcard patterns, and the index that maps an emitted topic to
//! the listeners that hear it.
//!
//! A topic is a dot-separated name such as `user.created`. A pattern may use
//! `*` for exactly one segment and `**` for zero or more segments; a trailing
//! `**` after another segment needs at least one (`event.**` does not match
//! `event`). Names are limited to [`MAX_TOPIC_SEGMENTS`] segments and
//! [`MAX_TOPIC_LEN`] bytes, so that no name makes matching or the route cache
//! expensive.

mod index;
mod matcher;
mod name;
mod specificity;

pub(crate) use index::{RemoveError, SharedRoute, TopicIndex};
pub use matcher::topic_matches;
pub(crate) use name::validate_topic;
pub use name::{MAX_TOPIC_LEN, MAX_TOPIC_SEGMENTS, validate_pattern};
pub(crate) use specificity::Specificity;
