//! Typed topics: listeners that receive a typed payload instead of an
//! untyped event.

mod bind;
mod observability;
mod topic;
mod unwrap;

pub use bind::{TypedListener, bind_listener, bind_typed_listener};
pub use observability::ObservabilitySpec;
pub use topic::TypedTopic;
pub use unwrap::unwrap_payload;
