//! The store conformance suite: what every [`EventStore`](soiree::EventStore)
//! must do, checked against a store the caller provides.
//!
//! Each check takes a fresh, isolated store (its own instance, database or
//! key prefix), exercises one behaviour, and panics with a message naming
//! the broken promise when the store does not keep it. A check whose ability
//! the store lacks ([`queue`](soiree::EventStore::queue),
//! [`dedup`](soiree::EventStore::dedup),
//! [`history`](soiree::EventStore::history) returning `None`) returns
//! [`Outcome::Skipped`] instead.
//!
//! A store's tests run the whole suite with one invocation of
//! [`conformance_suite!`](crate::conformance_suite), which expands to one
//! test per check (so that a failure names its check and the others still
//! run) and asserts that each passed or skipped for a lack the store
//! declares:
//!
//! ```
//! mod memory_queue {
//!     soiree_test::conformance_suite!(store: std::sync::Arc::new(soiree::MemoryStore::queue()));
//! }
//! # fn main() {}
//! ```
//!
//! [`run_all`] (or [`Conformance::run_all`]) runs the checks of
//! [`Check::ALL`] in sequence, and each check is a public function for a
//! test of its own (a flawed store that one check must catch).
//!
//! What the checks expect beyond the trait docs: a history lists events
//! oldest first and, for a queue store, includes the events it queued; a
//! queue store's backlog counts queued and delivered-but-unacknowledged
//! events; handler ids and event ids are compared as given.
//!
//! Time and flow control checks are gated on the ability rather than
//! failing a store that lacks it: [`queue_holds_delayed_events_until_due`],
//! [`cancelled_delayed_events_are_never_delivered`] and
//! [`bus_delivers_delayed_events_when_due`] skip a queue that does not
//! [`schedule`](soiree::EventQueue::schedules);
//! [`append_unique_keeps_one_event_per_key`] and
//! [`bus_emits_a_unique_key_once`] skip a store whose
//! [`append_unique`](soiree::EventStore::append_unique) answers
//! `Unsupported`; [`bus_reruns_snoozed_listeners`] runs everywhere (the bus
//! does the snoozing), while [`queue_defers_without_counting_a_delivery`]
//! and [`bus_keeps_long_snoozes_in_the_store`] skip a queue that does not
//! [`defer`](soiree::EventQueue::defers) (declared as [`Ability::Deferral`]);
//! [`bus_batch_listener_settles_each_event_alone`] runs everywhere
//! (the bus does the batching); [`lease_has_one_holder_at_a_time`],
//! [`lease_is_taken_over_only_after_expiry`] and
//! [`lease_renew_and_release_only_by_the_holder`] skip a store without
//! [`leases`](soiree::EventStore::leases) (declared as [`Ability::Leases`]).
//! [`shared_limits_bound_slots_and_rates`] and
//! [`buses_share_a_listener_limit`] skip a store without
//! [`limits`](soiree::EventStore::limits) (declared as [`Ability::SharedLimits`]).
//!
//! [`groups_each_run_every_event`] takes two handles on one store, reading
//! for two consumer groups, so it is not in [`Check::ALL`]: a store opts
//! into it with the macro's `groups` argument.
//!
//! Checks that build an [`EventBus`](soiree::EventBus) need a multi-thread
//! runtime when the store blocks (and are best run on one anyway); every wait
//! is bounded by [`Conformance::timeout`].

mod ability;
mod batch;
mod bus;
mod config;
mod dedup;
mod groups;
mod history;
pub mod hostile;
mod leases;
mod limits;
mod outcome;
mod queue;
mod replay;
mod results;
mod scheduled;
mod serialization;
mod snooze;
mod start;
mod suite;
mod suite_macro;
mod support;
mod unique;

pub use ability::Ability;
pub use batch::bus_batch_listener_settles_each_event_alone;
pub use bus::{bus_delivers_each_event_once, bus_reports_listener_errors};
pub use config::Conformance;
pub use dedup::dedup_is_scoped_per_event_and_handler;
pub use groups::groups_each_run_every_event;
pub use history::{event_history_pages_cover_all_events, saved_events_read_back_identical};
pub use leases::{
    lease_has_one_holder_at_a_time, lease_is_taken_over_only_after_expiry,
    lease_renew_and_release_only_by_the_holder,
};
pub use limits::{buses_share_a_listener_limit, shared_limits_bound_slots_and_rates};
pub use outcome::{Outcome, Report};
pub use queue::{
    queue_ack_removes_from_backlog, queue_dequeue_respects_max,
    queue_empty_dequeue_returns_nothing, queue_is_fifo_for_one_consumer, queue_redelivers_unacked,
    queue_round_trip, queue_unacked_stays_in_backlog,
};
pub use replay::{bus_skips_listeners_that_already_succeeded, queue_carries_events_between_buses};
pub use results::handler_results_read_back;
pub use scheduled::{
    bus_delivers_delayed_events_when_due, cancelled_delayed_events_are_never_delivered,
    queue_holds_delayed_events_until_due,
};
pub use serialization::unserializable_payload_persists_nothing;
pub use snooze::{
    bus_keeps_long_snoozes_in_the_store, bus_reruns_snoozed_listeners,
    queue_defers_without_counting_a_delivery,
};
pub use start::listeners_registered_before_start_each_handle_the_backlog;
pub use suite::{Check, IntoStore, run_all};
pub use unique::{append_unique_keeps_one_event_per_key, bus_emits_a_unique_key_once};
