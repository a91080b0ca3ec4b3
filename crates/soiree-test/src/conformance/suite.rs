//! The list of checks and the runner.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use soiree::EventStore;

use super::{Conformance, Outcome, Report};

/// One check of the suite, named after the function that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Check {
    /// [`saved_events_read_back_identical`](super::saved_events_read_back_identical)
    SavedEventsReadBackIdentical,
    /// [`event_history_pages_cover_all_events`](super::event_history_pages_cover_all_events)
    EventHistoryPagesCoverAllEvents,
    /// [`handler_results_read_back`](super::handler_results_read_back)
    HandlerResultsReadBack,
    /// [`dedup_is_scoped_per_event_and_handler`](super::dedup_is_scoped_per_event_and_handler)
    DedupIsScopedPerEventAndHandler,
    /// [`queue_round_trip`](super::queue_round_trip)
    QueueRoundTrip,
    /// [`queue_is_fifo_for_one_consumer`](super::queue_is_fifo_for_one_consumer)
    QueueIsFifoForOneConsumer,
    /// [`queue_dequeue_respects_max`](super::queue_dequeue_respects_max)
    QueueDequeueRespectsMax,
    /// [`queue_empty_dequeue_returns_nothing`](super::queue_empty_dequeue_returns_nothing)
    QueueEmptyDequeueReturnsNothing,
    /// [`queue_ack_removes_from_backlog`](super::queue_ack_removes_from_backlog)
    QueueAckRemovesFromBacklog,
    /// [`queue_unacked_stays_in_backlog`](super::queue_unacked_stays_in_backlog)
    QueueUnackedStaysInBacklog,
    /// [`queue_redelivers_unacked`](super::queue_redelivers_unacked)
    QueueRedeliversUnacked,
    /// [`bus_delivers_each_event_once`](super::bus_delivers_each_event_once)
    BusDeliversEachEventOnce,
    /// [`bus_reports_listener_errors`](super::bus_reports_listener_errors)
    BusReportsListenerErrors,
    /// [`unserializable_payload_persists_nothing`](super::unserializable_payload_persists_nothing)
    UnserializablePayloadPersistsNothing,
    /// [`bus_skips_listeners_that_already_succeeded`](super::bus_skips_listeners_that_already_succeeded)
    BusSkipsListenersThatAlreadySucceeded,
    /// [`queue_carries_events_between_buses`](super::queue_carries_events_between_buses)
    QueueCarriesEventsBetweenBuses,
    /// [`listeners_registered_before_start_each_handle_the_backlog`](super::listeners_registered_before_start_each_handle_the_backlog)
    ListenersRegisteredBeforeStartEachHandleTheBacklog,
    /// [`queue_holds_delayed_events_until_due`](super::queue_holds_delayed_events_until_due)
    QueueHoldsDelayedEventsUntilDue,
    /// [`cancelled_delayed_events_are_never_delivered`](super::cancelled_delayed_events_are_never_delivered)
    CancelledDelayedEventsAreNeverDelivered,
    /// [`bus_delivers_delayed_events_when_due`](super::bus_delivers_delayed_events_when_due)
    BusDeliversDelayedEventsWhenDue,
    /// [`bus_reruns_snoozed_listeners`](super::bus_reruns_snoozed_listeners)
    BusRerunsSnoozedListeners,
    /// [`queue_defers_without_counting_a_delivery`](super::queue_defers_without_counting_a_delivery)
    QueueDefersWithoutCountingADelivery,
    /// [`bus_keeps_long_snoozes_in_the_store`](super::bus_keeps_long_snoozes_in_the_store)
    BusKeepsLongSnoozesInTheStore,
    /// [`append_unique_keeps_one_event_per_key`](super::append_unique_keeps_one_event_per_key)
    AppendUniqueKeepsOneEventPerKey,
    /// [`bus_emits_a_unique_key_once`](super::bus_emits_a_unique_key_once)
    BusEmitsAUniqueKeyOnce,
    /// [`bus_batch_listener_settles_each_event_alone`](super::bus_batch_listener_settles_each_event_alone)
    BusBatchListenerSettlesEachEventAlone,
    /// [`lease_has_one_holder_at_a_time`](super::lease_has_one_holder_at_a_time)
    LeaseHasOneHolderAtATime,
    /// [`lease_is_taken_over_only_after_expiry`](super::lease_is_taken_over_only_after_expiry)
    LeaseIsTakenOverOnlyAfterExpiry,
    /// [`lease_renew_and_release_only_by_the_holder`](super::lease_renew_and_release_only_by_the_holder)
    LeaseRenewAndReleaseOnlyByTheHolder,
    /// [`shared_limits_bound_slots_and_rates`](super::shared_limits_bound_slots_and_rates)
    SharedLimitsBoundSlotsAndRates,
    /// [`buses_share_a_listener_limit`](super::buses_share_a_listener_limit)
    BusesShareAListenerLimit,
}

impl Check {
    /// Every check, in the order [`run_all`] runs them.
    pub const ALL: [Check; 31] = [
        Check::SavedEventsReadBackIdentical,
        Check::EventHistoryPagesCoverAllEvents,
        Check::HandlerResultsReadBack,
        Check::DedupIsScopedPerEventAndHandler,
        Check::QueueRoundTrip,
        Check::QueueIsFifoForOneConsumer,
        Check::QueueDequeueRespectsMax,
        Check::QueueEmptyDequeueReturnsNothing,
        Check::QueueAckRemovesFromBacklog,
        Check::QueueUnackedStaysInBacklog,
        Check::QueueRedeliversUnacked,
        Check::BusDeliversEachEventOnce,
        Check::BusReportsListenerErrors,
        Check::UnserializablePayloadPersistsNothing,
        Check::BusSkipsListenersThatAlreadySucceeded,
        Check::QueueCarriesEventsBetweenBuses,
        Check::ListenersRegisteredBeforeStartEachHandleTheBacklog,
        Check::QueueHoldsDelayedEventsUntilDue,
        Check::CancelledDelayedEventsAreNeverDelivered,
        Check::BusDeliversDelayedEventsWhenDue,
        Check::BusRerunsSnoozedListeners,
        Check::QueueDefersWithoutCountingADelivery,
        Check::BusKeepsLongSnoozesInTheStore,
        Check::AppendUniqueKeepsOneEventPerKey,
        Check::BusEmitsAUniqueKeyOnce,
        Check::BusBatchListenerSettlesEachEventAlone,
        Check::LeaseHasOneHolderAtATime,
        Check::LeaseIsTakenOverOnlyAfterExpiry,
        Check::LeaseRenewAndReleaseOnlyByTheHolder,
        Check::SharedLimitsBoundSlotsAndRates,
        Check::BusesShareAListenerLimit,
    ];

    /// The check's name: the name of its function.
    pub fn name(self) -> &'static str {
        match self {
            Check::SavedEventsReadBackIdentical => "saved_events_read_back_identical",
            Check::EventHistoryPagesCoverAllEvents => "event_history_pages_cover_all_events",
            Check::HandlerResultsReadBack => "handler_results_read_back",
            Check::DedupIsScopedPerEventAndHandler => "dedup_is_scoped_per_event_and_handler",
            Check::QueueRoundTrip => "queue_round_trip",
            Check::QueueIsFifoForOneConsumer => "queue_is_fifo_for_one_consumer",
            Check::QueueDequeueRespectsMax => "queue_dequeue_respects_max",
            Check::QueueEmptyDequeueReturnsNothing => "queue_empty_dequeue_returns_nothing",
            Check::QueueAckRemovesFromBacklog => "queue_ack_removes_from_backlog",
            Check::QueueUnackedStaysInBacklog => "queue_unacked_stays_in_backlog",
            Check::QueueRedeliversUnacked => "queue_redelivers_unacked",
            Check::BusDeliversEachEventOnce => "bus_delivers_each_event_once",
            Check::BusReportsListenerErrors => "bus_reports_listener_errors",
            Check::UnserializablePayloadPersistsNothing => {
                "unserializable_payload_persists_nothing"
            }
            Check::BusSkipsListenersThatAlreadySucceeded => {
                "bus_skips_listeners_that_already_succeeded"
            }
            Check::QueueCarriesEventsBetweenBuses => "queue_carries_events_between_buses",
            Check::ListenersRegisteredBeforeStartEachHandleTheBacklog => {
                "listeners_registered_before_start_each_handle_the_backlog"
            }
            Check::QueueHoldsDelayedEventsUntilDue => "queue_holds_delayed_events_until_due",
            Check::CancelledDelayedEventsAreNeverDelivered => {
                "cancelled_delayed_events_are_never_delivered"
            }
            Check::BusDeliversDelayedEventsWhenDue => "bus_delivers_delayed_events_when_due",
            Check::BusRerunsSnoozedListeners => "bus_reruns_snoozed_listeners",
            Check::QueueDefersWithoutCountingADelivery => {
                "queue_defers_without_counting_a_delivery"
            }
            Check::BusKeepsLongSnoozesInTheStore => "bus_keeps_long_snoozes_in_the_store",
            Check::AppendUniqueKeepsOneEventPerKey => "append_unique_keeps_one_event_per_key",
            Check::BusEmitsAUniqueKeyOnce => "bus_emits_a_unique_key_once",
            Check::BusBatchListenerSettlesEachEventAlone => {
                "bus_batch_listener_settles_each_event_alone"
            }
            Check::LeaseHasOneHolderAtATime => "lease_has_one_holder_at_a_time",
            Check::LeaseIsTakenOverOnlyAfterExpiry => "lease_is_taken_over_only_after_expiry",
            Check::LeaseRenewAndReleaseOnlyByTheHolder => {
                "lease_renew_and_release_only_by_the_holder"
            }
            Check::SharedLimitsBoundSlotsAndRates => "shared_limits_bound_slots_and_rates",
            Check::BusesShareAListenerLimit => "buses_share_a_listener_limit",
        }
    }

    /// Runs the check against `store`, which must be fresh and used by
    /// nothing else.
    ///
    /// # Panics
    ///
    /// When the store fails the check; the message says what it got wrong.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the check; the store may then hold
    /// part of its data.
    pub async fn run(self, store: Arc<dyn EventStore>, config: &Conformance) -> Outcome {
        match self {
            Check::SavedEventsReadBackIdentical => {
                super::saved_events_read_back_identical(store, config).await
            }
            Check::EventHistoryPagesCoverAllEvents => {
                super::event_history_pages_cover_all_events(store, config).await
            }
            Check::HandlerResultsReadBack => super::handler_results_read_back(store, config).await,
            Check::DedupIsScopedPerEventAndHandler => {
                super::dedup_is_scoped_per_event_and_handler(store, config).await
            }
            Check::QueueRoundTrip => super::queue_round_trip(store, config).await,
            Check::QueueIsFifoForOneConsumer => {
                super::queue_is_fifo_for_one_consumer(store, config).await
            }
            Check::QueueDequeueRespectsMax => {
                super::queue_dequeue_respects_max(store, config).await
            }
            Check::QueueEmptyDequeueReturnsNothing => {
                super::queue_empty_dequeue_returns_nothing(store, config).await
            }
            Check::QueueAckRemovesFromBacklog => {
                super::queue_ack_removes_from_backlog(store, config).await
            }
            Check::QueueUnackedStaysInBacklog => {
                super::queue_unacked_stays_in_backlog(store, config).await
            }
            Check::QueueRedeliversUnacked => super::queue_redelivers_unacked(store, config).await,
            Check::BusDeliversEachEventOnce => {
                super::bus_delivers_each_event_once(store, config).await
            }
            Check::BusReportsListenerErrors => {
                super::bus_reports_listener_errors(store, config).await
            }
            Check::UnserializablePayloadPersistsNothing => {
                super::unserializable_payload_persists_nothing(store, config).await
            }
            Check::BusSkipsListenersThatAlreadySucceeded => {
                super::bus_skips_listeners_that_already_succeeded(store, config).await
            }
            Check::QueueCarriesEventsBetweenBuses => {
                super::queue_carries_events_between_buses(store, config).await
            }
            Check::ListenersRegisteredBeforeStartEachHandleTheBacklog => {
                super::listeners_registered_before_start_each_handle_the_backlog(store, config)
                    .await
            }
            Check::QueueHoldsDelayedEventsUntilDue => {
                super::queue_holds_delayed_events_until_due(store, config).await
            }
            Check::CancelledDelayedEventsAreNeverDelivered => {
                super::cancelled_delayed_events_are_never_delivered(store, config).await
            }
            Check::BusDeliversDelayedEventsWhenDue => {
                super::bus_delivers_delayed_events_when_due(store, config).await
            }
            Check::BusRerunsSnoozedListeners => {
                super::bus_reruns_snoozed_listeners(store, config).await
            }
            Check::QueueDefersWithoutCountingADelivery => {
                super::queue_defers_without_counting_a_delivery(store, config).await
            }
            Check::BusKeepsLongSnoozesInTheStore => {
                super::bus_keeps_long_snoozes_in_the_store(store, config).await
            }
            Check::AppendUniqueKeepsOneEventPerKey => {
                super::append_unique_keeps_one_event_per_key(store, config).await
            }
            Check::BusEmitsAUniqueKeyOnce => {
                super::bus_emits_a_unique_key_once(store, config).await
            }
            Check::BusBatchListenerSettlesEachEventAlone => {
                super::bus_batch_listener_settles_each_event_alone(store, config).await
            }
            Check::LeaseHasOneHolderAtATime => {
                super::lease_has_one_holder_at_a_time(store, config).await
            }
            Check::LeaseIsTakenOverOnlyAfterExpiry => {
                super::lease_is_taken_over_only_after_expiry(store, config).await
            }
            Check::LeaseRenewAndReleaseOnlyByTheHolder => {
                super::lease_renew_and_release_only_by_the_holder(store, config).await
            }
            Check::SharedLimitsBoundSlotsAndRates => {
                super::shared_limits_bound_slots_and_rates(store, config).await
            }
            Check::BusesShareAListenerLimit => {
                super::buses_share_a_listener_limit(store, config).await
            }
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a store factory may return: an `Arc` of a store, or an already
/// type-erased `Arc<dyn EventStore>`.
pub trait IntoStore {
    /// The store as the checks take it.
    fn into_store(self) -> Arc<dyn EventStore>;
}

impl<S: EventStore> IntoStore for Arc<S> {
    fn into_store(self) -> Arc<dyn EventStore> {
        self
    }
}

impl IntoStore for Arc<dyn EventStore> {
    fn into_store(self) -> Arc<dyn EventStore> {
        self
    }
}

/// Runs every check with the default [`Conformance`] settings, each against
/// a fresh store from `make_store`; see [`Conformance::run_all`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use soiree::MemoryStore;
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
/// let report = soiree_test::conformance::run_all(|| async { Arc::new(MemoryStore::new()) }).await;
/// assert!(!report.passed().is_empty());
/// # }
/// ```
///
/// # Panics
///
/// When the store fails a check.
///
/// # Cancel safety
///
/// As [`Check::run`].
pub async fn run_all<F, Fut>(make_store: F) -> Report
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: IntoStore,
{
    Conformance::default().run_all(make_store).await
}

impl Conformance {
    /// Runs every check in [`Check::ALL`], each against a fresh store from
    /// `make_store` (its own instance, database or key prefix), prints each
    /// outcome, and returns them.
    ///
    /// Prefer one test per check (see the [module docs](super)) in a
    /// backend's test suite: this stops at the first failure.
    ///
    /// # Panics
    ///
    /// When the store fails a check, with the check's name and the failed
    /// assertion.
    ///
    /// # Cancel safety
    ///
    /// As [`Check::run`].
    pub async fn run_all<F, Fut>(&self, mut make_store: F) -> Report
    where
        F: FnMut() -> Fut,
        Fut: Future,
        Fut::Output: IntoStore,
    {
        let mut report = Report::default();
        for check in Check::ALL {
            let store = make_store().await.into_store();
            let outcome = match AssertUnwindSafe(check.run(store, self))
                .catch_unwind()
                .await
            {
                Ok(outcome) => outcome,
                Err(panic) => {
                    // The assertion's own message was printed by the panic
                    // hook; say which check it came from before passing it on.
                    eprintln!("conformance check {check} failed");
                    std::panic::resume_unwind(panic);
                }
            };
            println!("conformance check {check}: {outcome}");
            report.outcomes.push((check, outcome));
        }
        report
    }
}
