//! Durable stores: the traits a backend implements, and an in-memory store.
//!
//! A store is an [`EventStore`]: it persists events before dispatch and the
//! outcome of every listener attempt. Optional abilities are separate traits,
//! discovered through [`EventStore::queue`], [`EventStore::dedup`],
//! [`EventStore::history`] and [`EventStore::leases`]:
//!
//! - [`EventQueue`]: `emit` enqueues and the bus's consumers dequeue, dispatch
//!   and acknowledge, so events survive a crash and spread over processes;
//! - [`HandlerDedup`]: a listener that already succeeded for an event id is
//!   skipped when the event is delivered again to the same consumer group;
//! - [`EventHistory`]: paged reads of stored events and results;
//! - [`LeaderLease`]: named leases with a time to live and a fencing token,
//!   through which processes elect the one that fires periodic events.
//! - [`SharedLimits`]: listener concurrency slots and rates shared by every
//!   process of the store.
//!
//! [`kit`] holds what every queue store shares: lease keep-alive, the dedup
//! cache and batched writes with per-item outcomes.
//!
//! Every store also implements [`Inspect`], the inspection and repair trait
//! that the `soiree` CLI and dashboard use.

mod dedup;
mod event_store;
mod history;
pub mod inspect;
pub mod kit;
mod lease;
mod memory;
mod queue;
mod result;
pub(crate) mod shared_limits;

pub use dedup::HandlerDedup;
pub use event_store::EventStore;
pub use history::{EventHistory, Page};
pub use inspect::{
    ConsumerInfo, DeadLetter, DeadLetterSelection, EventDetail, Filter, Inspect, LeaseInfo,
    LimitSlot, PendingDelivery, Query, Rates, Record, ScheduledEvent, StoreInfo, StoreStats,
};
pub use lease::{LeaderLease, Lease, MAX_LEASE_NAME_LEN};
pub use memory::MemoryStore;
pub use queue::{DeferredDelivery, Delivery, EventQueue, FailedDelivery};
pub use result::StoredResult;
pub use shared_limits::{SharedLimits, SlotHold};
