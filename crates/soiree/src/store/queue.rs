//! Queue stores: at-least-once delivery with acknowledgement.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::{Error, Result, StoredEvent};

/// One delivery of a queued event to a consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The store's receipt for this delivery, passed back to [`EventQueue::ack`].
    pub receipt: String,
    /// The event.
    pub event: StoredEvent,
    /// How many times the event has been delivered, this time included.
    pub delivery_count: u32,
}

/// A delivery that failed: a listener still failed (or panicked) after its
/// retries, or the entry could not be dispatched at all (an invalid topic).
/// Passed to [`EventQueue::fail`] so the store keeps it visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDelivery {
    /// The delivery's receipt.
    pub receipt: String,
    /// The first error, as text (what an operator sees beside a dead letter).
    pub error: String,
}

/// A delivery to be delivered again later, not counted as a delivery: a
/// listener of it snoozed ([`Snooze`](crate::Snooze)). Passed to
/// [`EventQueue::defer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredDelivery {
    /// The delivery's receipt.
    pub receipt: String,
    /// When it is due again: never delivered before.
    pub until: SystemTime,
    /// Why, as text (the snooze), for a store that shows it beside a
    /// waiting delivery.
    pub reason: String,
}

/// A durable queue of events.
///
/// An event stays in the queue until a consumer acknowledges it; a delivery
/// that is never acknowledged (its consumer died) is delivered again. Entries
/// that cannot be parsed are the store's to set aside (a dead-letter list),
/// never returned as deliveries and never silently dropped.
///
/// Each method is a primitive a store does in about one round trip: append
/// ([`enqueue`](Self::enqueue)), claim ([`dequeue`](Self::dequeue)),
/// settle ([`ack`](Self::ack), [`fail`](Self::fail)), hand back
/// ([`release`](Self::release)), keep ([`extend`](Self::extend)) and count
/// ([`backlog`](Self::backlog)). The lifecycle around them is the bus's:
/// it batches settling calls and retries them a bounded number of times,
/// keeps leases alive while listeners run, and bounds its last calls at
/// close. What several stores share below the trait (a dedup cache,
/// batched writes with per-item outcomes) is in [`kit`](crate::kit).
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Appends an event durably. When this returns `Ok`, the event survives a
    /// crash of this process.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the event was not stored.
    /// [`Error::LimitExceeded`](crate::Error::LimitExceeded) (and the other
    /// errors of [`limits`](crate::limits)) when the event is past a limit:
    /// nothing is stored. Implementations check with
    /// [`limits::encode_event`](crate::limits::encode_event) (which also
    /// writes the JSON) or [`limits::check_stored`](crate::limits::check_stored).
    ///
    /// # Cancel safety
    ///
    /// Implementations must tolerate cancellation: a cancelled call may or
    /// may not have taken effect, and the bus treats it as not done.
    async fn enqueue(&self, event: &StoredEvent) -> Result<()>;

    /// Takes up to `max` events, waiting up to `wait` for the first one.
    /// Returns an empty list when none arrived in time.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the queue cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Implementations must be cancel safe up to at-least-once: a cancelled
    /// call may leave deliveries unacknowledged, to be delivered again.
    async fn dequeue(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>>;

    /// Acknowledges deliveries: their events are done and will not be
    /// delivered again.
    ///
    /// # Results before ack
    ///
    /// One rule for every store, for [`ack`](Self::ack), [`fail`](Self::fail)
    /// and [`defer`](Self::defer): a delivery is settled only once the
    /// listener results saved for its event
    /// ([`EventStore::save_handler_result`](crate::EventStore::save_handler_result))
    /// are settled, so that a settled event's results are never lost unseen:
    ///
    /// - a result written is durable before its delivery is settled;
    /// - a result the store refuses for good (too large, invalid, a
    ///   constraint) is logged, counted (`soiree_store_results_refused_total`)
    ///   and dropped: writing it again cannot succeed, so it must not wedge
    ///   its delivery, which is settled;
    /// - a result that could not be written for a transient reason (the
    ///   connection), after the store's bounded retries, holds back its own
    ///   delivery only: the call settles the others and fails with
    ///   [`Error::ResultsNotSaved`](crate::Error::ResultsNotSaved) naming how
    ///   many it did not; they are counted
    ///   (`soiree_store_acks_withheld_total`), logged, and delivered again
    ///   after their lease, their listeners with them (at least once;
    ///   bounded by the delivery limit like any redelivery);
    /// - when the store cannot tell which results were written (it could
    ///   not wait for them within its bound), the call settles nothing and
    ///   fails with [`Error::Store`](crate::Error::Store).
    ///
    /// The [`kit`](crate::kit) gives the parts: a
    /// [`ResultWriter`](crate::kit::ResultWriter) tells each result given up
    /// and why, a [`DedupCache`](crate::kit::DedupCache) marks the held
    /// deliveries whose results were lost, and
    /// [`kit::held_back`](crate::kit::held_back) counts and reports them.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the acknowledgement was not
    /// recorded; the events may then be delivered again.
    /// [`Error::ResultsNotSaved`](crate::Error::ResultsNotSaved) when the
    /// others were acknowledged but not the deliveries named: see above.
    /// [`Error::LeasesLost`](crate::Error::LeasesLost) when the others were
    /// acknowledged but some receipts named leases this consumer no longer
    /// holds (they expired, or another consumer claimed them): those events
    /// are delivered again.
    ///
    /// # Cancel safety
    ///
    /// Implementations must tolerate cancellation: a cancelled call may or
    /// may not have taken effect, and the bus treats it as not done.
    async fn ack(&self, receipts: &[String]) -> Result<()>;

    /// Takes failed deliveries off the consumer: the store keeps them visible
    /// and replayable (a dead-letter list, or a retry later), never drops them
    /// silently. The bus calls it, in batches, instead of
    /// [`ack`](Self::ack) for deliveries whose listeners failed after their
    /// retries (errors the error handler swallowed do not count) and for
    /// entries it cannot dispatch.
    ///
    /// The default acknowledges them, for stores without a place for
    /// failures: the errors then reach only the bus's error handler and log.
    ///
    /// Results before settling, as for [`ack`](Self::ack).
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when it was not recorded; the
    /// events may then be delivered again.
    /// [`Error::ResultsNotSaved`](crate::Error::ResultsNotSaved) as for
    /// [`ack`](Self::ack).
    ///
    /// # Cancel safety
    ///
    /// As [`ack`](Self::ack).
    async fn fail(&self, failures: &[FailedDelivery]) -> Result<()> {
        let receipts: Vec<String> = failures.iter().map(|f| f.receipt.clone()).collect();
        self.ack(&receipts).await
    }

    /// Whether [`fail`](Self::fail) moves a delivery that failed on its
    /// `delivery_count`th delivery to the dead letters (rather than
    /// delivering it again later, or acknowledging it). The bus then logs
    /// that dead letter once at WARN, with how to replay it, instead of a
    /// generic listener error.
    ///
    /// The default is `false`, as the default `fail` acknowledges.
    fn dead_letters_failure(&self, delivery_count: u32) -> bool {
        let _ = delivery_count;
        false
    }

    /// Hands back deliveries this consumer took but will not run, so that
    /// other consumers get them at once and the handback does not count as a
    /// delivery. The bus calls it once when its consumer stops (at close),
    /// with the receipts of deliveries it had taken but not dispatched
    /// (often none; those it read ahead, see [`read_ahead`](Self::read_ahead));
    /// a store that holds deliveries of its own below the trait hands them
    /// back too. Deliveries already dispatched are still acknowledged or
    /// failed afterwards.
    ///
    /// The default does nothing: the deliveries come back after the store's
    /// redelivery timeout, counted as delivered once more.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store could not hand
    /// them back; they then come back after the redelivery timeout.
    ///
    /// # Cancel safety
    ///
    /// As [`ack`](Self::ack).
    async fn release(&self, receipts: &[String]) -> Result<()> {
        let _ = receipts;
        Ok(())
    }

    /// Whether this queue implements [`defer`](Self::defer). The bus then
    /// snoozes a delivery in the store, off its workers, when a listener
    /// snoozes for longer than [`Snooze::IN_STORE_AFTER`](crate::Snooze::IN_STORE_AFTER);
    /// otherwise (the default, `false`) the snooze waits in the process.
    fn defers(&self) -> bool {
        false
    }

    /// Takes deliveries off the consumer to be delivered again at their
    /// due time, without counting a delivery: a store-side snooze. The bus
    /// calls it, in batches, instead of [`ack`](Self::ack) for deliveries a
    /// listener snoozed (see [`Snooze`](crate::Snooze)).
    ///
    /// What an implementation guarantees:
    ///
    /// - never delivered again before `until` (on the store's clock; a
    ///   store whose clock is another machine's says so), but soon after,
    ///   to any consumer of the group (this one included), and only to
    ///   this delivery's consumer group;
    /// - the delivery count is kept: the next delivery has the
    ///   [`delivery_count`](Delivery::delivery_count) this one had, so a
    ///   snooze never brings an event nearer its dead letter;
    /// - on a durable store it survives a restart of the consumer and of
    ///   the store, as a delayed event does;
    /// - a receipt the consumer no longer holds (its lease expired and
    ///   another consumer took the event) is left alone, as by `ack`;
    /// - results before settling, as for [`ack`](Self::ack).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] from the default (a queue that does not
    /// [`defer`](Self::defers)); [`Error::Store`](crate::Error::Store) when
    /// it was not recorded: the deliveries are then delivered again after
    /// the store's redelivery timeout (perhaps before `until`: their
    /// listeners snooze again).
    /// [`Error::ResultsNotSaved`](crate::Error::ResultsNotSaved) as for
    /// [`ack`](Self::ack).
    ///
    /// # Cancel safety
    ///
    /// As [`ack`](Self::ack).
    async fn defer(&self, deferrals: &[DeferredDelivery]) -> Result<()> {
        let _ = deferrals;
        Err(Error::Unsupported(
            "deferring deliveries: this queue does not defer (EventQueue::defers)".into(),
        ))
    }

    /// How long [`EventBus::close`](crate::EventBus::close) waits, after the
    /// last delivery's listeners finished, for its last calls to the queue
    /// ([`ack`](Self::ack), [`fail`](Self::fail), [`release`](Self::release)):
    /// one deadline for all of them, not a time per call. What is not
    /// settled by then is abandoned (the bus logs how many) and delivered
    /// again later: at least once. The default is 5 s; a store with a
    /// response timeout returns that.
    fn close_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }

    /// How often the bus extends the leases of deliveries whose listeners are
    /// still running ([`extend`](Self::extend)); `None` (the default): the
    /// store needs no extension. Lease keep-alive is the bus's, one
    /// mechanism for every store: a store runs no keep-alive task of its
    /// own. Return well under the store's lease (a third of it), so that a
    /// failed or late call is made up for before the lease expires.
    fn lease_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// The most deliveries the bus's consumer may take per
    /// [`dequeue`](Self::dequeue) beyond its free workers (read-ahead), so
    /// that a bus that asks for one or two at a time does not pay a round
    /// trip per event. The default, 0, makes the bus ask for exactly as
    /// many deliveries as it has free workers. A store's dequeue takes what
    /// it is asked for: the bus sizes the reads.
    ///
    /// With a non-zero hint and a [`lease_interval`](Self::lease_interval)
    /// (without one the hint is ignored: what is held could not be kept),
    /// the bus's consumer guarantees:
    ///
    /// - while it keeps asking, it calls `dequeue(n)` once what it holds is
    ///   dispatched, with `n` enough for about a quarter of the lease
    ///   (taken as three quarters of `lease_interval`) at the rate it took
    ///   its last batch, never fewer than its free workers nor more than
    ///   `max(free workers, read_ahead)`; before its first batch and after
    ///   an empty one (nothing to measure) `n` is at most 32 (or its free
    ///   workers), so that a bus waking to a burst does not take the whole
    ///   hint before its pace is known. It holds the
    ///   surplus itself, dispatching it as workers free up (in order);
    /// - the held deliveries' receipts are in its [`extend`](Self::extend)
    ///   calls every `lease_interval`, with the running ones, so a held
    ///   delivery is never redelivered to another consumer while held;
    /// - at close it hands them back with one [`release`](Self::release),
    ///   with the deliveries it took but did not dispatch;
    /// - when it comes back slowly (all its workers were busy for a quarter
    ///   of the lease), its next `dequeue` asks for its free workers only,
    ///   so that a slow process does not sit on events other consumers
    ///   could run.
    ///
    /// A store whose claim is not per delivery (a lease over several
    /// deliveries that must run in order) keeps its own buffer and returns 0.
    fn read_ahead(&self) -> usize {
        0
    }

    /// Keeps the deliveries of `receipts` with this consumer: their
    /// listeners are still running, or the bus holds them read ahead
    /// ([`read_ahead`](Self::read_ahead)), so they must not be redelivered
    /// to another consumer yet (a lease that follows the handler). The bus
    /// calls it every [`lease_interval`](Self::lease_interval) with the
    /// deliveries it took and has not settled or handed back — with none
    /// when it holds none, so that a store that holds deliveries of its own
    /// (a buffer below the trait) keeps their leases too (one round trip
    /// for both). A store that holds nothing undispatched returns at once
    /// from a call with no receipts, without a round trip (the bus makes
    /// one every interval while idle). A delivery nobody extends (its
    /// consumer died or hung without a listener timeout) is redelivered
    /// after the store's timeout as before; a store may bound how long it
    /// keeps extending one delivery.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store could not extend
    /// them; the bus logs it and tries again at the next interval.
    ///
    /// # Cancel safety
    ///
    /// As [`ack`](Self::ack). The bus bounds each call by the interval.
    async fn extend(&self, receipts: &[String]) -> Result<()> {
        let _ = receipts;
        Ok(())
    }

    /// Whether this queue holds a delayed event until its due time (the
    /// property [`PROPERTY_DUE_AT`](crate::PROPERTY_DUE_AT), read with
    /// [`StoredEvent::due_at`]): [`enqueue`](Self::enqueue) keeps such an
    /// event out of [`dequeue`](Self::dequeue) until it is due, never
    /// before, and [`cancel_scheduled`](Self::cancel_scheduled) works.
    /// The bus refuses to enqueue an event due later on a queue that
    /// answers `false` (the default), rather than deliver it early.
    fn schedules(&self) -> bool {
        false
    }

    /// Removes a delayed event that is not due yet, by its event id, for
    /// every consumer group; reports whether one was removed (an event
    /// already due, delivered or unknown: `false`). The stored event's
    /// history stays.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] from the default (a queue that does not
    /// [`schedule`](Self::schedules)); [`Error::Store`] when the store
    /// cannot be written.
    ///
    /// # Cancel safety
    ///
    /// As [`ack`](Self::ack).
    async fn cancel_scheduled(&self, event_id: &str) -> Result<bool> {
        let _ = event_id;
        Err(Error::Unsupported(
            "cancelling delayed events: this queue does not schedule (EventQueue::schedules)"
                .into(),
        ))
    }

    /// The number of events not yet acknowledged: queued and in flight.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the queue cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Implementations must tolerate cancellation: a cancelled call may or
    /// may not have taken effect, and the bus treats it as not done.
    async fn backlog(&self) -> Result<u64>;
}
