//! The consumer side of a store: claiming leases of the log and rows of the
//! retry table, buffering their events, handing them to the bus and
//! settling them.
//!
//! A consumer claims a range of the log (a lease with a fencing token),
//! reads its events and hands them out a few at a time as the bus asks.
//! Receipts name the lease, its token and the event's row. Acknowledged
//! receipts are counted here; once every event of a lease is acknowledged,
//! the lease is dropped in the database (only while its token still
//! matches). A consumer that dies leaves its leases to expire; another
//! consumer (or itself, after a restart) claims them again, with a new token
//! and one more delivery. The bus keeps the leases of running deliveries
//! alive through `extend` (`keep.rs`).
//!
//! Each part owns its state and lock: the buffer with its key order
//! (`buffer.rs`, `key_order.rs`), the leases (`leases.rs`), the retry rows
//! (`retries.rs`) and the receipts (`receipts.rs`). Where two are taken
//! together the buffer's lock comes first.

mod buffer;
mod claim;
mod keep;
mod key_order;
mod leases;
mod load;
mod receipts;
mod release;
mod retries;
mod scheduled;
mod settle;

use std::sync::Arc;
use std::time::Duration;

use soiree::Delivery;
use tokio::time::Instant;

pub(crate) use buffer::Buffer;
pub(crate) use leases::Leases;
pub(crate) use receipts::Completions;
pub(crate) use retries::Retries;

use crate::Result;
use crate::backend::Backend;
use crate::core::Core;
use crate::maintenance::heartbeat::Dequeuing;
use claim::Fill;
pub(crate) use receipts::{Receipt, parse_receipts};

/// The first pause before claiming again while committed events wait
/// behind an open transaction; doubled up to the poll interval.
const WAITING_PAUSE: Duration = Duration::from_millis(1);

/// When this consumer next looks for expired leases and due retry rows.
#[derive(Debug)]
pub(crate) struct ClaimState {
    next_reclaim: Instant,
    next_retry: Instant,
    next_scheduled: Instant,
}

impl Default for ClaimState {
    fn default() -> Self {
        Self {
            next_reclaim: Instant::now(),
            next_retry: Instant::now(),
            next_scheduled: Instant::now(),
        }
    }
}

impl<B: Backend> Core<B> {
    /// Takes up to `max` events, waiting up to `wait` for the first one.
    pub(crate) async fn dequeue(
        self: &Arc<Self>,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        self.start_maintenance();
        let _active = Dequeuing::start(&self.liveness);
        let max = max.max(1);
        let deadline = Instant::now()
            .checked_add(wait)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        let mut pause = WAITING_PAUSE;
        loop {
            let notified = self.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let out = self.take_buffered(max);
            if !out.is_empty() {
                return Ok(out);
            }
            let waiting = match self.fill().await? {
                Fill::Progress => continue,
                Fill::Empty { waiting } => waiting,
            };
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let sleep = if waiting {
                let this = pause;
                pause = (pause * 2).min(self.options.poll_interval);
                this
            } else {
                pause = WAITING_PAUSE;
                self.options.poll_interval
            };
            // Woken at the next due time of a delayed event, not at the
            // next poll.
            let until = (now + sleep).min(deadline);
            let until = self.next_due_at().map_or(until, |due| due.min(until));
            tokio::select! {
                () = &mut notified => {}
                // This process's settling writes may be the open
                // transaction the events wait behind.
                () = &mut settled, if waiting => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Hands out buffered deliveries of leases and retry rows still held.
    fn take_buffered(&self, max: usize) -> Vec<Delivery> {
        self.buffer.take(
            max,
            self.options.ordered_by_key,
            |source, now| match source {
                Receipt::Log { lease, token, row } => self.leases.mark_out(lease, token, row, now),
                Receipt::Retry { id, token } => self.retries.mark_out(id, token, now),
            },
        )
    }

    /// `(id, token)` of the leases and retry rows this consumer holds.
    fn own_pairs(&self) -> (receipts::Pairs, receipts::Pairs) {
        (self.leases.pairs(), self.retries.pairs())
    }

    /// With `ordered_by_key`: deliveries are settled (their keys move on),
    /// after `moved` of them went to (or stayed in) the retry table. Wakes
    /// the consumers waiting for a key.
    fn keys_settled(&self, receipts: &[Receipt], moved: &[Receipt]) {
        if self.options.ordered_by_key && self.buffer.keys_settled(receipts, moved) {
            self.arrived.notify_waiters();
        }
    }
}
