//! Registering a batch listener.

use std::future::Future;
use std::time::Duration;

use super::EventBus;
use crate::listener::BatchListener;
use crate::{Batch, BatchOutcome, BoxError, Error, ListenerBinding, ListenerId, Result};

impl EventBus {
    /// Registers a batch listener on `pattern` with the stable id `name`:
    /// one call of `listener` for up to `max_items` events, returning an
    /// outcome per event ([`BatchOutcome`]).
    ///
    /// A batch starts with the first event that reaches the listener and
    /// runs once it holds `max_items` events, or `max_wait` after that
    /// first event, whichever comes first: no event waits longer than
    /// `max_wait` for its batch to start. Once the bus closes, a batch
    /// being gathered runs at once (close never waits out `max_wait`), and
    /// each later event runs without waiting for others.
    ///
    /// To the rest of the bus it is one listener, called once per event:
    /// each event's delivery runs it in its turn among the event's
    /// listeners and waits for the outcome its batch gives it, so the
    /// delivery lifecycle is the usual one, per event. The bus's
    /// [`RetryPolicy`](crate::RetryPolicy) retries only the events that
    /// failed (in a later batch, with the next
    /// [`attempt`](crate::EventContext::attempt)); with a store, each
    /// event's result is recorded under `name`, so a redelivered event whose
    /// batch listener already succeeded skips it; a failed event's delivery
    /// alone goes to the queue's `fail` (retry, dead letter), and each
    /// event is acknowledged when its own listeners are done.
    ///
    /// A batch that returns an error fails every event of it with that
    /// error (a [`Permanent`](crate::Permanent) error stays permanent, a
    /// [`Snooze`](crate::Snooze) snoozes each event). A batch that panics
    /// fails every event of it as a panic: each event's emission reports
    /// [`Error::Panicked`], the panic handler hears of each, and the
    /// listener metrics count one panic per event; the bus and the other
    /// listeners are unaffected.
    ///
    /// A batch gathers the events whose listeners run at the same time, and
    /// each waiting event holds one of the bus's
    /// [`workers`](crate::EventBusBuilder::workers) (as a listener's retry
    /// backoff does): a batch holds at most as many events as the bus has
    /// workers, so give the bus at least `max_items` workers (registering
    /// with fewer logs a warning). A delivery waiting for its batch stays
    /// in flight: keep `max_wait` well below the queue's redelivery timeout
    /// (stores that keep leases alive extend them meanwhile).
    ///
    /// The bus's [`listener_timeout`](crate::EventBusBuilder::listener_timeout)
    /// bounds each event's call, its wait for the batch included. When it
    /// fires while the event waits for a batch that has not started, the
    /// event is left out of that batch: the listener never sees it, and the
    /// attempt is a timeout like any other (retried per the
    /// [`RetryPolicy`](crate::RetryPolicy), in a later batch). When it
    /// fires after the event's batch started, the call running the batch is
    /// not cut short: it may still handle the event while the bus records a
    /// timeout for it and runs it again (the retry, or a redelivery). So an
    /// event may be handled twice — at least once, as everywhere — and a
    /// batch listener should be idempotent per event, or be given a
    /// timeout well above `max_wait` plus its longest batch.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `max_items` is 0; otherwise as
    /// [`EventBus::on`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use soiree::{Batch, BatchOutcome, BoxError, Error, EventBus};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let bus = EventBus::new(); // 10 workers: batches of up to 10
    /// let batches = Arc::new(AtomicUsize::new(0));
    /// let counted = batches.clone();
    /// bus.on_batch("bulk-insert", "order.placed", 10, Duration::from_millis(50), move |batch: Batch| {
    ///     counted.fetch_add(1, Ordering::SeqCst);
    ///     async move {
    ///         // One statement for the whole batch; one outcome per order.
    ///         let outcome: BatchOutcome = batch
    ///             .iter()
    ///             .map(|ctx| match ctx.payload_as::<u32>() {
    ///                 Some(0) => Err::<(), BoxError>("order 0 is not valid".into()),
    ///                 _ => Ok(()),
    ///             })
    ///             .collect();
    ///         Ok(outcome)
    ///     }
    /// }).unwrap();
    ///
    /// let emissions: Vec<_> = (0..3u32).map(|n| bus.emit("order.placed", n)).collect();
    /// let mut errors = Vec::new();
    /// for emission in emissions {
    ///     errors.extend(emission.collect::<Vec<Error>>().await);
    /// }
    /// assert_eq!(batches.load(Ordering::SeqCst), 1, "one call for the three orders");
    /// assert_eq!(errors.len(), 1, "only order 0 failed");
    /// # }
    /// ```
    pub fn on_batch<F, Fut>(
        &self,
        name: &str,
        pattern: &str,
        max_items: usize,
        max_wait: Duration,
        listener: F,
    ) -> Result<ListenerId>
    where
        F: Fn(Batch) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<BatchOutcome, BoxError>> + Send + 'static,
    {
        if max_items == 0 {
            return Err(Error::InvalidConfig(format!(
                "batch listener {name:?}: max_items is 0; give it at least 1"
            )));
        }
        let workers = self.workers();
        if max_items > workers {
            tracing::warn!(
                listener = name,
                max_items,
                workers,
                "a batch listener's max_items is above the bus's workers: its batches hold at \
                 most that many events; build the bus with at least max_items workers"
            );
        }
        let listener = BatchListener::new(max_items, max_wait, listener);
        ListenerBinding::from_listener(pattern, listener)
            .named(name)
            .register(self)
    }
}
