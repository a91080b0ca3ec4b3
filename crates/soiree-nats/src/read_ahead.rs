//! Dequeue with read-ahead: a pull request takes more than the bus asks
//! for while the bus keeps asking, and the rest waits here for its next
//! call.
//!
//! The bus asks for as many deliveries as it has free workers, often one
//! or two at a time; a pull request per dequeue would cost a round trip
//! per event or two. Deliveries read ahead are held by this handle (their
//! claim timeout runs): while they wait they are extended every third of
//! the claim timeout, at the next dequeue; the bus's close hands them back
//! ([`EventQueue::release`](soiree::EventQueue::release)). When the bus
//! comes back slowly (all its workers busy for a quarter of the claim
//! timeout) nothing is read ahead, so that a slow process does not sit on
//! events other processes of the group could run.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use soiree::Delivery;
use tokio::time::Instant;

use crate::NatsStore;

/// Deliveries one pull request asks for at least, while the bus keeps
/// asking.
pub(crate) const READ_AHEAD: usize = 64;

/// Deliveries read ahead of the bus.
#[derive(Debug)]
pub(crate) struct ReadAhead {
    buffer: VecDeque<Delivery>,
    /// When the buffer's deliveries were read or last extended.
    buffered_at: Instant,
    /// When the bus last asked.
    last_dequeue: Option<Instant>,
}

impl Default for ReadAhead {
    fn default() -> Self {
        Self {
            buffer: VecDeque::new(),
            buffered_at: Instant::now(),
            last_dequeue: None,
        }
    }
}

impl ReadAhead {
    /// Takes every delivery held (at close, to hand them back).
    pub(crate) fn take_all(&mut self) -> Vec<String> {
        self.buffer.drain(..).map(|d| d.receipt).collect()
    }
}

impl NatsStore {
    pub(crate) async fn dequeue_ahead(
        &self,
        max: usize,
        wait: Duration,
    ) -> crate::Result<Vec<Delivery>> {
        let max = max.max(1);
        let claim = self.inner.options.claim_timeout;
        let mut state = self.inner.read_ahead.lock().await;
        let keeps_asking = state
            .last_dequeue
            .is_some_and(|at| at.elapsed() < claim / 4);
        state.last_dequeue = Some(Instant::now());
        if !state.buffer.is_empty() {
            self.keep_read_ahead(&mut state).await;
            if !state.buffer.is_empty() {
                let take = max.min(state.buffer.len());
                return Ok(state.buffer.drain(..take).collect());
            }
        }
        let size = if keeps_asking {
            max.max(READ_AHEAD)
        } else {
            max
        };
        let mut deliveries = self.take(size, wait).await?;
        self.prefetch_successes(&deliveries).await;
        if deliveries.len() > max {
            state.buffer.extend(deliveries.drain(max..));
            state.buffered_at = Instant::now();
        }
        Ok(deliveries)
    }

    /// Extends the deliveries read ahead once a third of the claim timeout
    /// has passed; drops them once it has passed whole (the server gives
    /// them to the group again), or when extending fails (they come back
    /// after the claim timeout).
    async fn keep_read_ahead(&self, state: &mut ReadAhead) {
        let claim = self.inner.options.claim_timeout;
        let age = state.buffered_at.elapsed();
        if age < claim / 3 {
            return;
        }
        let receipts: Vec<String> = state.buffer.iter().map(|d| d.receipt.clone()).collect();
        let kept = age < claim
            && match self.ack_all(&receipts, |_| AckKind::Progress).await {
                Ok(()) => true,
                Err(err) => {
                    tracing::debug!(%err, "cannot extend deliveries read ahead; they come back after the claim timeout");
                    false
                }
            };
        if kept {
            state.buffered_at = Instant::now();
        } else {
            state.buffer.clear();
            self.inner.dedup_cache.remove(&receipts);
        }
    }

    /// Up to `size` deliveries from the server: those there are now, else
    /// the first to arrive within `wait` and those there are then.
    async fn take(&self, size: usize, wait: Duration) -> crate::Result<Vec<Delivery>> {
        let mut messages = self.pull(size, None).await?;
        if messages.is_empty() && !wait.is_zero() {
            // A request for one: one for more would be held until all
            // arrived or `wait` passed.
            messages = self
                .pull(1, Some(long_poll(wait, self.inner.options.claim_timeout)))
                .await?;
            if !messages.is_empty() && size > 1 {
                messages.extend(self.pull(size - 1, None).await?);
            }
        }
        let mut deliveries = Vec::with_capacity(messages.len());
        for message in messages {
            if let Some(delivery) = self.delivery(message).await? {
                deliveries.push(delivery);
            }
        }
        Ok(deliveries)
    }
}

/// How long a waiting pull request lasts on the server: `wait`, at most
/// 0.382 of the claim timeout (the caller may ask again).
///
/// nats-server 2.9.10 (one server and an R3 cluster alike) can hand a
/// redelivery to a pull request that expires at that very instant: it
/// counts the delivery, but neither the message nor the request's timeout
/// status reaches the client, and the message comes back only after
/// another claim timeout, counted once more (reproduced with bare
/// async-nats: AckWait 1 s, a request expiring after 1 s sent right after
/// the first delivery; 3 redeliveries of 32 counted 3 instead of 2, none
/// with requests of 1.5 s). A consumer that asks again at once after a
/// delivery with requests as long as the claim timeout meets that
/// delivery's redelivery exactly as its request expires; requests of 0.382
/// of it (no small multiple of which is a whole claim timeout) do not
/// line up with it. A redelivery can still meet an expiry by chance, with
/// odds of about the server's reaction time over the request's length.
fn long_poll(wait: Duration, claim: Duration) -> Duration {
    wait.min(claim.mul_f64(0.382)).max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_polls_never_last_a_whole_claim_timeout() {
        let claim = Duration::from_secs(1);
        assert_eq!(
            long_poll(Duration::from_millis(100), claim),
            Duration::from_millis(100)
        );
        for wait in [claim, claim * 2, claim + Duration::from_millis(500)] {
            let poll = long_poll(wait, claim);
            assert!(poll < claim / 2, "{poll:?}");
            for k in 1..=5u32 {
                let distance = (poll * k)
                    .abs_diff(claim)
                    .min((poll * k).abs_diff(claim * 2));
                assert!(distance >= Duration::from_millis(50), "{k} × {poll:?}");
            }
        }
    }
}
