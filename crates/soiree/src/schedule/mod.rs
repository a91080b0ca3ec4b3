//! Time and flow control: due times, snoozes and unique keys.
//!
//! What travels with an event is plain data a store keeps (a due time in
//! the reserved property [`PROPERTY_DUE_AT`]); what a store must do with it
//! is a handful of primitives with defaults that say "unsupported"
//! ([`EventQueue::schedules`](crate::EventQueue::schedules),
//! [`EventQueue::cancel_scheduled`](crate::EventQueue::cancel_scheduled),
//! [`EventStore::append_unique`](crate::EventStore::append_unique)), so that
//! a store opts in and the bus never delivers early through one that did not.

pub(crate) mod clock;
mod due;
mod options;
pub(crate) mod scheduler;
mod snooze;
mod unique;

pub use due::PROPERTY_DUE_AT;
pub(crate) use due::{format_due, parse_due};
pub(crate) use options::EventOptions;
pub use snooze::{SNOOZED_PREFIX, Snooze};
pub use unique::Appended;
