//! Handing back deliveries this consumer holds and will not run.

use std::collections::{HashMap, HashSet};

use super::receipts::{Receipt, parse_receipts, split_receipts};
use crate::Result;
use crate::backend::Backend;
use crate::core::Core;

impl<B: Backend> Core<B> {
    /// Hands back the deliveries read ahead into the buffer and those the
    /// bus took but did not run, without counting a delivery: their events
    /// become leases of their own, expired at once, that any consumer of the
    /// group claims next (retry-table rows become due at once).
    pub(crate) async fn release(&self, receipts: &[String]) -> Result<()> {
        let taken = parse_receipts(receipts)?;
        let mut sources: Vec<Receipt> = taken.clone();
        let mut all: Vec<String> = receipts.to_vec();
        for (source, receipt) in self.buffer.drain() {
            sources.push(source);
            all.push(receipt);
        }
        let (log, retries) = split_receipts(&sources);
        let handed = self.hand_back(&log).await?;
        let count = handed.len();
        if count > 0 || !retries.is_empty() {
            // Other consumers (in other processes too) claim them next.
            self.wake();
        }
        self.settle_log(&handed).await?;
        if !retries.is_empty() {
            self.backend.release_retries(&retries).await?;
            self.retries.remove_all(&retries);
        }
        self.keys_settled(&taken, &[]);
        self.dedup.remove(&all);
        tracing::debug!(
            events = count,
            retries = retries.len(),
            "handed back undispatched deliveries"
        );
        Ok(())
    }

    /// Hands back the still pending events of `log`, lease by lease, as
    /// runs of consecutive events; returns those handed back.
    async fn hand_back(&self, log: &[(i64, i64, i64)]) -> Result<Vec<(i64, i64, i64)>> {
        let mut by_lease: HashMap<(i64, i64), HashSet<i64>> = HashMap::new();
        for &(lease, token, row) in log {
            by_lease.entry((lease, token)).or_default().insert(row);
        }
        let mut handed = Vec::new();
        for ((lease, token), rows) in by_lease {
            let runs = self.leases.pending_runs(lease, token, &rows);
            if runs.is_empty() {
                continue;
            }
            if self.backend.hand_back((lease, token), &runs).await? {
                handed.extend(rows.iter().map(|&row| (lease, token, row)));
            }
        }
        Ok(handed)
    }
}
