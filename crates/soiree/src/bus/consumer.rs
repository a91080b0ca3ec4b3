//! Consumers of a queue store: dequeue (reading ahead when the queue asks
//! for it), dispatch on the pool, acknowledge.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::dispatch::{Delivered, Dispatcher, Job, Settled, Work, handle_error};
use super::unheard::settle_unheard;
use super::{BusInner, EmissionState};
use crate::listener::panic_message;
use crate::pool::Queued;
use crate::store::kit::lease_keeper::{LeaseHolder, LeaseKeeper, keep_leases};
use crate::topic::validate_topic;
use crate::{DeferredDelivery, Delivery, Error, EventQueue, FailedDelivery};

/// The most receipts acknowledged in one call.
const ACK_BATCH: usize = 512;
/// Deliveries asked for at most while nothing is measured (see
/// `ReadAhead::ask`); the size then follows the rate.
const FIRST_READ: usize = 32;
/// Pause after a failed dequeue, doubled up to the maximum while it keeps failing.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);
/// Tries of a settling call (ack, fail) before it is given up.
const SETTLE_ATTEMPTS: usize = 5;
/// The close deadline without a queue (nothing to wait for then).
const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the bus's consumer once, if it has a queue store and consuming is
/// on (what [`EventBus::start`](crate::EventBus::start) does).
pub(crate) fn start(core: &Arc<BusInner>) -> crate::Result<()> {
    let bus = &**core;
    let config = &bus.consumer;
    if bus.closed.load(std::sync::atomic::Ordering::Acquire) {
        return Err(Error::Closed);
    }
    if !config.enabled || bus.store.as_deref().and_then(|s| s.queue()).is_none() {
        return Ok(());
    }
    let runtime = Handle::try_current().map_err(|_| Error::NoRuntime)?;
    if config
        .started
        .swap(true, std::sync::atomic::Ordering::AcqRel)
    {
        return Ok(());
    }
    let (acks, receipts) = mpsc::unbounded_channel();
    config
        .tasks
        .spawn_on(acknowledge(Arc::downgrade(core), receipts), &runtime);
    if let Some(interval) = bus
        .store
        .as_deref()
        .and_then(|s| s.queue())
        .and_then(|q| q.lease_interval())
    {
        // Set before the consumer task starts, which is what reads it.
        config.leases.enable();
        // Not in `tasks`: `close` must not wait for its next tick. It ends
        // by itself once the bus is closed and nothing runs.
        drop(runtime.spawn(keep_leases(Arc::downgrade(core), interval)));
    }
    let consumer = config
        .tasks
        .spawn_on(consume(Arc::downgrade(core), acks), &runtime);
    *config.consumer_task() = Some(consumer);
    Ok(())
}

/// Runs the consumer until shutdown, then hands back to the queue what it
/// took and will not run (read ahead, or refused by the closing pool), in a
/// task of its own: the hand-back runs while the deliveries in flight
/// finish, and `close` bounds both.
async fn consume(bus: Weak<BusInner>, acks: mpsc::UnboundedSender<Settled>) {
    let mut held = Vec::new();
    let mut ahead = VecDeque::new();
    consume_until_shutdown(&bus, acks, &mut ahead, &mut held).await;
    held.extend(ahead.into_iter().map(|delivery| delivery.receipt));
    let Some(core) = bus.upgrade() else { return };
    core.consumer.tasks.spawn(release(bus, held));
}

/// How the consumer reads ahead of its workers (see
/// [`EventQueue::read_ahead`]): enough for about a quarter of the lease at
/// the rate the bus took its last batch, between its free workers and the
/// queue's hint. A fast bus then pays one round trip per up to the hint's
/// deliveries, while a slow one (long listeners) holds no more than it
/// starts within a quarter of the lease.
#[derive(Debug, Clone, Copy)]
struct ReadAhead {
    /// The most deliveries asked for (the queue's hint); 0: free workers only.
    most: usize,
    /// A quarter of the lease (three quarters of the lease interval): the
    /// work read ahead, and how long all workers may stay busy before the
    /// bus counts as slow.
    quarter: Duration,
}

impl ReadAhead {
    /// Only for a queue whose leases the bus keeps: a held delivery must be
    /// extended like a running one.
    fn of(queue: &dyn EventQueue) -> Self {
        match queue.lease_interval() {
            Some(interval) if queue.read_ahead() > 0 => Self {
                most: queue.read_ahead(),
                // The lease is three intervals.
                quarter: interval.mul_f64(0.75),
            },
            _ => Self {
                most: 0,
                quarter: Duration::MAX,
            },
        }
    }

    /// How many deliveries to ask for with `free` workers, `since` the
    /// consumer last took deliveries (from the queue or from those it
    /// held), when its last dequeue returned `batch` deliveries `taken_in`
    /// ago. Before its first batch, and after one that came back empty
    /// (the queue was idle: nothing to measure), it asks for
    /// [`FIRST_READ`] at most: a bus that wakes to a burst does not take
    /// the whole hint before it knows its pace, which other consumers of
    /// the group could share.
    fn ask(self, free: usize, since: Duration, batch: usize, taken_in: Duration) -> usize {
        if self.most == 0 || since >= self.quarter {
            return free;
        }
        let wanted = if batch == 0 {
            FIRST_READ
        } else {
            let rate = batch as f64 / taken_in.as_secs_f64().max(1e-6);
            // `as` saturates: a huge or infinite product becomes usize::MAX.
            (rate * self.quarter.as_secs_f64()) as usize
        };
        wanted.min(self.most).max(free)
    }
}

/// Hands back deliveries taken and not dispatched, within the queue's close
/// timeout (and before `close` abandons it); their leases are no longer
/// kept after that.
async fn release(bus: Weak<BusInner>, held: Vec<String>) {
    let Some(core) = bus.upgrade() else { return };
    let abandon = core.consumer.abandon.clone();
    let Some(queue) = core.store.as_deref().and_then(|s| s.queue()) else {
        return;
    };
    let limit = queue.close_timeout();
    let count = held.len();
    tokio::select! {
        biased;
        outcome = tokio::time::timeout(limit, queue.release(&held)) => match outcome {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(
                %err,
                count,
                "handing back undispatched deliveries failed: they are delivered again after the store's redelivery timeout"
            ),
            Err(_) => tracing::warn!(
                count,
                ?limit,
                "handing back undispatched deliveries timed out: they are delivered again after the store's redelivery timeout"
            ),
        },
        () = abandon.cancelled() => tracing::warn!(
            count,
            "the close deadline passed before undispatched deliveries were handed back: they are delivered again after the store's redelivery timeout"
        ),
    }
    for receipt in &held {
        core.consumer.leases.remove(receipt);
    }
}

/// `ahead` holds the deliveries taken and not dispatched yet, in order
/// (read ahead, or more than a store was asked for); `held` collects the
/// receipt of one the closing pool refused. Every delivery taken is in the
/// lease keeper from the moment it is taken until it is settled or handed
/// back.
async fn consume_until_shutdown(
    bus: &Weak<BusInner>,
    acks: mpsc::UnboundedSender<Settled>,
    ahead: &mut VecDeque<Delivery>,
    held: &mut Vec<String>,
) {
    let Some(strong) = bus.upgrade() else { return };
    let shutdown = strong.consumer.shutdown.clone();
    let poll_wait = strong.consumer.poll_wait;
    // One permit per event in flight: at most `workers` dispatch at once
    // (the bus's `resize` changes the permits).
    let in_flight = Arc::clone(&strong.consumer.in_flight);
    let Some(queue) = strong.store.as_deref().and_then(|s| s.queue()) else {
        return;
    };
    // Read once: the queue's answers do not change.
    let (read_ahead, defers) = (ReadAhead::of(queue), queue.defers());
    drop(strong);
    let mut pause = RETRY_PAUSE;
    // When the consumer last took deliveries (from the queue or from those
    // it holds): the time since, when it asks again, is how long all its
    // workers were busy.
    let mut took_at = Instant::now();
    // The size of the last batch the queue returned and when: the rate the
    // bus takes deliveries at, when it asks again.
    let (mut batch, mut batch_at) = (0, Instant::now());
    loop {
        let first = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            permit = Arc::clone(&in_flight).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let Some(core) = bus.upgrade() else { return };
        let bus_config = &*core;
        let mut permits = Vec::new();
        let mut next = Some(first);
        while let Some(permit) = next {
            if bus_config.consumer.pay_debt() {
                // The bus shrank: this permit is gone for good.
                permit.forget();
            } else {
                permits.push(permit);
            }
            next = Arc::clone(&in_flight).try_acquire_owned().ok();
        }
        if permits.is_empty() {
            continue;
        }
        let Some(queue) = bus_config.store.as_deref().and_then(|s| s.queue()) else {
            return;
        };
        if ahead.is_empty() {
            let max = read_ahead.ask(permits.len(), took_at.elapsed(), batch, batch_at.elapsed());
            // A panicking store must not end consuming for good: report it and
            // carry on like any other failed dequeue.
            let dequeue = AssertUnwindSafe(queue.dequeue(max, poll_wait)).catch_unwind();
            let deliveries = tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                deliveries = dequeue => deliveries.unwrap_or_else(|panic| {
                    Err(Error::store(format!("dequeue panicked: {}", panic_message(&*panic))))
                }),
            };
            match deliveries {
                Ok(deliveries) => {
                    pause = RETRY_PAUSE;
                    (batch, batch_at) = (deliveries.len(), Instant::now());
                    for delivery in &deliveries {
                        bus_config.consumer.leases.insert(&delivery.receipt);
                    }
                    // Beyond the free workers (read ahead, or a store that
                    // returned more than asked for): held here, in order.
                    ahead.extend(deliveries);
                }
                Err(err) => {
                    tracing::warn!(%err, ?pause, "dequeue failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    continue;
                }
            }
        }
        took_at = Instant::now();
        while let Some(permit) = permits.pop() {
            let Some(delivery) = ahead.pop_front() else {
                break;
            };
            #[allow(unused_mut)]
            let mut event = delivery.event.into_event();
            #[cfg(feature = "otel")]
            crate::event::trace_context::continue_trace(&mut event);
            let route = match validate_topic(event.topic()) {
                Ok(topic) => bus_config.index.route(topic),
                Err(err) => {
                    // Not deliverable to any listener: tell the error handler
                    // (or the log), and hand it to the queue's `fail` so it
                    // stays visible.
                    let failure = err.to_string();
                    if let Some(err) = handle_error(bus_config, &event, err) {
                        tracing::warn!(%err, "queued event with an invalid topic");
                    }
                    let _ = acks.send(Settled {
                        receipt: delivery.receipt,
                        failure: Some(failure),
                        release: false,
                        defer: None,
                    });
                    continue;
                }
            };
            if route.listeners.iter().all(|listener| listener.is_removed()) {
                let failure = settle_unheard(bus_config, &event);
                let _ = acks.send(Settled {
                    receipt: delivery.receipt,
                    failure,
                    release: false,
                    defer: None,
                });
                continue;
            }
            let receipt = delivery.receipt.clone();
            let work = Work::Deliver(Box::new(Delivered {
                route,
                receipt: delivery.receipt,
                delivery_count: delivery.delivery_count,
                dead_letters: queue.dead_letters_failure(delivery.delivery_count),
                acks: acks.clone(),
                defers,
                deferred: std::sync::Mutex::new(None),
                permit: std::sync::Mutex::new(Some(permit)),
            }));
            let slot = core.pool.enter();
            let state = Arc::new(EmissionState::new(event, work, slot, false, true));
            state.make_claimable();
            let queued = Queued {
                job: Job::Emission(state),
                slot,
            };
            if let Err((rejected, _)) = core
                .pool
                .push(queued, || Dispatcher(Arc::clone(&core)))
                .await
            {
                core.pool.cancel(slot, None);
                // Closing: the delivery and those held are handed back for
                // another consumer (their leases are kept until then).
                tracing::debug!(err = %rejected.into_error(), "delivery left pending");
                held.push(receipt);
                return;
            }
        }
    }
}

/// Settles finished deliveries in batches — acknowledged, handed to the
/// queue's `fail`, or to its `defer` (a snooze kept by the store) — and ends when the consumer and every delivery job are
/// gone, after a last flush, or when `close` abandons what is left.
async fn acknowledge(bus: Weak<BusInner>, mut settled: mpsc::UnboundedReceiver<Settled>) {
    let Some(abandon) = bus.upgrade().map(|core| core.consumer.abandon.clone()) else {
        return;
    };
    let mut batch = Vec::with_capacity(ACK_BATCH);
    let mut receipts = Vec::with_capacity(ACK_BATCH);
    let mut failures = Vec::new();
    let mut released = Vec::new();
    let mut deferred = Vec::new();
    let mut unsent = Unsent::default();
    loop {
        let received = tokio::select! {
            biased;
            received = settled.recv_many(&mut batch, ACK_BATCH) => received,
            () = abandon.cancelled() => 0,
        };
        if received == 0 {
            break;
        }
        let Some(core) = bus.upgrade() else { return };
        let Some(queue) = core.store.as_deref().and_then(|s| s.queue()) else {
            return;
        };
        for Settled {
            receipt,
            failure,
            release,
            defer,
        } in batch.drain(..)
        {
            core.consumer.leases.remove(&receipt);
            match failure {
                _ if release => released.push(receipt),
                None if defer.is_some() => {
                    if let Some((until, reason)) = defer {
                        deferred.push(DeferredDelivery {
                            receipt,
                            until,
                            reason,
                        });
                    }
                }
                None => receipts.push(receipt),
                Some(error) => failures.push(FailedDelivery { receipt, error }),
            }
        }
        if !released.is_empty() {
            // Runs parked on a limit when the bus closed: delivered again.
            if !with_retry(&abandon, "release", released.len(), || {
                queue.release(&released)
            })
            .await
            {
                unsent.acks += released.len();
            }
            released.clear();
        }
        if !receipts.is_empty() {
            if !with_retry(&abandon, "ack", receipts.len(), || queue.ack(&receipts)).await {
                unsent.acks += receipts.len();
            }
            receipts.clear();
        }
        if !failures.is_empty() {
            if !with_retry(&abandon, "fail", failures.len(), || queue.fail(&failures)).await {
                unsent.failures += failures.len();
            }
            failures.clear();
        }
        if !deferred.is_empty() {
            // Snoozes kept by the store; one it could not keep comes back
            // after its redelivery timeout, and its listener snoozes again.
            if !with_retry(&abandon, "defer", deferred.len(), || queue.defer(&deferred)).await {
                unsent.acks += deferred.len();
            }
            deferred.clear();
        }
    }
    if abandon.is_cancelled() {
        // Deliveries settled after the deadline: never sent at all. They
        // leave the running set, or their leases would be kept.
        let core = bus.upgrade();
        while let Ok(Settled {
            receipt, failure, ..
        }) = settled.try_recv()
        {
            if let Some(core) = &core {
                core.consumer.leases.remove(&receipt);
            }
            match failure {
                None => unsent.acks += 1,
                Some(_) => unsent.failures += 1,
            }
        }
    }
    if unsent.acks + unsent.failures > 0 {
        tracing::warn!(
            acks = unsent.acks,
            failures = unsent.failures,
            "the close deadline passed before these deliveries were settled: they will be delivered again"
        );
    }
}

/// Settling calls abandoned at the close deadline, by kind.
#[derive(Default)]
struct Unsent {
    acks: usize,
    failures: usize,
}

/// Retries a settling call a few times; gives up loudly (the deliveries are
/// then delivered again: at least once). A call that settled all but the
/// deliveries whose results could not be saved
/// ([`Error::ResultsNotSaved`](crate::Error::ResultsNotSaved)) or whose
/// leases were lost ([`Error::LeasesLost`](crate::Error::LeasesLost)) is
/// done. Returns `false` when `abandon`
/// cut it short: the deliveries were not settled.
async fn with_retry<'a, F, Fut>(
    abandon: &CancellationToken,
    what: &str,
    count: usize,
    mut call: F,
) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::Result<()>> + 'a,
{
    let mut pause = RETRY_PAUSE;
    for _ in 0..SETTLE_ATTEMPTS {
        let outcome = tokio::select! {
            biased;
            () = abandon.cancelled() => return false,
            outcome = call() => outcome,
        };
        match outcome {
            Ok(()) => return true,
            // The others are settled; these come back after their lease
            // (the store counted and logged them). Trying again would
            // settle nothing more.
            Err(crate::Error::ResultsNotSaved { .. }) => return true,
            Err(err @ crate::Error::LeasesLost { .. }) => {
                tracing::warn!(%err, count, "{what}: some deliveries were not settled");
                return true;
            }
            Err(err) => {
                tracing::warn!(%err, count, "{what} failed; retrying");
                tokio::select! {
                    () = abandon.cancelled() => return false,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
        }
    }
    tracing::error!(
        count,
        "gave up settling deliveries ({what}): they will be delivered again"
    );
    true
}

/// Waits, at close, for the consumer's last calls to the queue once every
/// delivery has finished: at most the queue's
/// [`close_timeout`](crate::EventQueue::close_timeout) from now, one
/// deadline for all of them. Past it the calls are abandoned (and logged
/// with counts); their deliveries are delivered again.
pub(crate) async fn finish(bus: &BusInner) {
    let tasks = &bus.consumer.tasks;
    tasks.close();
    let limit = bus
        .store
        .as_deref()
        .and_then(|s| s.queue())
        .map_or(DEFAULT_CLOSE_TIMEOUT, |q| q.close_timeout());
    if tokio::time::timeout(limit, tasks.wait()).await.is_err() {
        bus.consumer.abandon.cancel();
        // Every task ends at once on `abandon`.
        tasks.wait().await;
    }
}

impl LeaseHolder for BusInner {
    fn leased_queue(&self) -> Option<&dyn crate::EventQueue> {
        self.store.as_deref().and_then(|s| s.queue())
    }

    fn lease_keeper(&self) -> &LeaseKeeper {
        &self.consumer.leases
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read-ahead of a queue with a 30 s lease and `most` as its hint.
    fn read_ahead(most: usize) -> ReadAhead {
        ReadAhead {
            most,
            quarter: Duration::from_millis(7500),
        }
    }

    #[test]
    fn reads_grow_with_the_rate_and_shrink_for_slow_listeners() {
        let ahead = read_ahead(1000);
        let quick = Duration::from_millis(1);
        // 32 taken in a millisecond: 32,000/s, capped at the hint.
        assert_eq!(ahead.ask(4, quick, 32, quick), 1000);
        // 1,000 taken in 100 s (10/s): 75 last a quarter of the lease.
        assert_eq!(ahead.ask(4, quick, 1000, Duration::from_secs(100)), 75);
        // Slower still: never fewer than the free workers.
        assert_eq!(ahead.ask(4, quick, 1, Duration::from_secs(3600)), 4);
        // No time at all does not divide by zero.
        assert_eq!(ahead.ask(4, Duration::ZERO, 32, Duration::ZERO), 1000);
        // Nothing measured yet, or an idle queue: a first read, not the most.
        assert_eq!(
            ahead.ask(4, quick, 0, Duration::from_secs(3600)),
            FIRST_READ
        );
        assert_eq!(read_ahead(8).ask(4, quick, 0, quick), 8);
        assert_eq!(read_ahead(8).ask(40, quick, 0, quick), 40);
        // All workers were busy for a quarter of the lease: free ones only.
        assert_eq!(ahead.ask(4, Duration::from_millis(7500), 32, quick), 4);
        // A hint below the free workers: the free workers.
        assert_eq!(read_ahead(2).ask(4, quick, 32, quick), 4);
    }

    #[test]
    fn without_a_hint_the_consumer_asks_for_its_free_workers() {
        let none = ReadAhead {
            most: 0,
            quarter: Duration::MAX,
        };
        let quick = Duration::from_millis(1);
        assert_eq!(none.ask(3, quick, 32, quick), 3);
        assert_eq!(none.ask(3, quick, 0, quick), 3);
    }
}
