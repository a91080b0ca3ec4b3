//! Filling the buffer: an expired lease first (every so often), then due
//! rows of the retry table, else the next range of the log; a lease taken
//! over after it expired is split or dead-lettered.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::ClaimState;
use super::key_order::Before;
use super::receipts::Receipt;
use crate::Result;
use crate::backend::{Backend, Claim, LeaseRow, Pos};
use crate::core::Core;
use crate::ordering::{Blockers, Check};

/// With `ordered_by_key`, new ranges of the log are claimed only while the
/// buffer holds fewer than this many batches (entries held back wait there).
const ORDERED_BUFFER_BATCHES: usize = 4;

/// What a fill of the buffer found.
pub(crate) enum Fill {
    /// Something happened (events loaded, or a lease dead-lettered): look again.
    Progress,
    /// Nothing to claim; `waiting` when committed events wait behind an
    /// open transaction.
    Empty { waiting: bool },
}

impl<B: Backend> Core<B> {
    /// Claims more events into the buffer.
    pub(super) async fn fill(&self) -> Result<Fill> {
        let mut claim = self.claiming.lock().await;
        let room = match self.before_fill().await? {
            Some(room) => room,
            None => return Ok(Fill::Progress),
        };
        let reclaim_due = Instant::now() >= claim.next_reclaim;
        if reclaim_due {
            if let Some(lease) = self.backend.reclaim().await? {
                self.reclaimed(lease).await?;
                return Ok(Fill::Progress);
            }
            let pause = (self.options.lease_timeout / 4)
                .clamp(Duration::from_millis(50), Duration::from_secs(5));
            claim.next_reclaim = Instant::now() + pause;
        }
        self.move_scheduled(&mut claim).await?;
        if self.claim_retries(&mut claim).await? {
            return Ok(Fill::Progress);
        }
        let claimed = if room {
            self.backend.claim_rows(self.options.batch_size).await?
        } else {
            Claim::Empty(None)
        };
        let waiting = match claimed {
            Claim::Lease(lease, rows) => {
                self.load_claimed(lease, rows).await?;
                return Ok(Fill::Progress);
            }
            Claim::Empty(waiting) => waiting,
        };
        // Nothing new: take over an expired or handed-back lease now
        // rather than at the next reclaim time.
        if !reclaim_due && let Some(lease) = self.backend.reclaim().await? {
            self.reclaimed(lease).await?;
            return Ok(Fill::Progress);
        }
        let waiting = match waiting {
            Some(waiting) => waiting,
            None => room && self.backend.waiting().await?,
        };
        Ok(Fill::Empty { waiting })
    }

    /// Whether to claim new ranges of the log (`None`: the buffer has
    /// something to hand out; look again). With `ordered_by_key`, entries
    /// held back stay in the buffer: look again only if one is ready, else
    /// check the held-back ones when due and claim more while there is room
    /// (expired leases and retry rows, which hold earlier events, whatever
    /// the buffer holds).
    async fn before_fill(&self) -> Result<Option<bool>> {
        if !self.options.ordered_by_key {
            // Another dequeue may have filled it while this one waited.
            return Ok(self.buffer.is_empty().then_some(true));
        }
        let room = ORDERED_BUFFER_BATCHES.saturating_mul(self.options.batch_size);
        match self
            .buffer
            .before_fill(room, self.options.poll_interval, || self.own_pairs())
        {
            Before::Ready => Ok(None),
            Before::Fill { room, check } => {
                if let Some((check, leases, retries)) = check
                    && self.recheck(&check, &leases, &retries).await?
                {
                    return Ok(None);
                }
                Ok(Some(room))
            }
        }
    }

    /// Claims due rows of the retry table (when told some were put there,
    /// else every so often); whether it loaded any.
    async fn claim_retries(&self, claim: &mut ClaimState) -> Result<bool> {
        if !self.retry_due.swap(false, Ordering::AcqRel) && Instant::now() < claim.next_retry {
            return Ok(false);
        }
        claim.next_retry = Instant::now()
            + self
                .options
                .poll_interval
                .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let rows = self.backend.claim_retries(self.options.batch_size).await?;
        if rows.is_empty() {
            return Ok(false);
        }
        self.load_retries(rows).await?;
        Ok(true)
    }

    /// Handles a lease taken over after it expired: dead letters past
    /// `max_deliveries`, one lease per event from the third delivery on (so
    /// that a poison event does not take its neighbours down with it).
    async fn reclaimed(&self, lease: LeaseRow) -> Result<()> {
        self.forget_lease(lease.id);
        let max = self.options.max_deliveries;
        if i64::from(lease.deliveries) > i64::from(max) {
            let moved = self.backend.dead_letter_lease(&lease, max).await?;
            tracing::warn!(
                lease = lease.id,
                events = moved,
                deliveries = lease.deliveries,
                "events delivered too often moved to the dead letters"
            );
            self.metrics.dead_lettered.inc_by(moved);
            return Ok(());
        }
        if lease.deliveries > 2 && lease.events > 1 {
            for single in self.backend.split(&lease).await? {
                self.load(single).await?;
            }
            return Ok(());
        }
        self.load(lease).await
    }

    /// Forgets a lease this consumer lost, with its buffered entries.
    pub(super) fn forget_lease(&self, lease: i64) {
        self.buffer.forget(
            |source| matches!(source, Receipt::Log { lease: l, .. } if *l == lease),
            || self.leases.remove(lease),
        );
    }

    /// Forgets a retry row this consumer lost, with its buffered entry.
    pub(super) fn forget_retry(&self, id: i64) {
        self.buffer.forget(
            |source| matches!(source, Receipt::Retry { id: r, .. } if *r == id),
            || self.retries.remove(id),
        );
    }

    /// With `ordered_by_key`, checks the keys of events being loaded against
    /// the rest of the group (leaving out this consumer's leases and retry
    /// rows, and `lease` and `retries` being loaded): the epoch the check
    /// began at and, per key, the earliest blocking position. `None` when
    /// no event has a key.
    pub(super) async fn check_keys<'a>(
        &self,
        events: impl Iterator<Item = (&'a str, Pos)>,
        lease: Option<(i64, i64)>,
        retries: &[(i64, i64)],
    ) -> Result<Option<(u64, Blockers)>> {
        let mut keys: HashSet<&str> = HashSet::new();
        let mut before: Option<Pos> = None;
        for (key, pos) in events {
            keys.insert(key);
            before = Some(before.map_or(pos, |b| b.max(pos)));
        }
        let Some(before) = before else {
            return Ok(None);
        };
        let keys: Vec<String> = keys.into_iter().map(str::to_owned).collect();
        let (epoch, mut own_leases, mut own_retries) = self.buffer.epoch(|| self.own_pairs());
        own_leases.extend(lease);
        own_retries.extend_from_slice(retries);
        let blockers = self
            .backend
            .key_blockers(&keys, before, &own_leases, &own_retries)
            .await?;
        Ok(Some((epoch, blockers.into_iter().collect())))
    }

    /// Checks the held-back entries again; returns whether any was released.
    async fn recheck(
        &self,
        check: &Check,
        leases: &[(i64, i64)],
        retries: &[(i64, i64)],
    ) -> Result<bool> {
        let blockers: Blockers = self
            .backend
            .key_blockers(&check.keys, check.before, leases, retries)
            .await?
            .into_iter()
            .collect();
        Ok(self.buffer.apply(check, &blockers))
    }
}
