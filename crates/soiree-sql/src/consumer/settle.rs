//! Settling deliveries: acknowledgements and failures, each after the
//! results of the deliveries' listeners are written (results before ack).
//! A lease is completed in the database once all its events are settled.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use std::time::SystemTime;

use soiree::{DeferredDelivery, FailedDelivery};

use super::receipts::{Pairs, Receipt, parse_receipts, split_receipts};
use crate::backend::{Backend, FailedRetry, FailedRow};
use crate::core::Core;
use crate::{Error, FailurePolicy, Result};

/// Deliveries held back for their lost results, by one settling call.
#[derive(Default)]
struct HeldBack {
    count: usize,
    /// Of them, receipts no longer held here.
    stale: usize,
}

/// Failed deliveries sorted by where they go.
#[derive(Default)]
struct Routed {
    /// Log events to the dead letters, and to the retry table.
    dead_rows: Vec<FailedRow>,
    retry_rows: Vec<FailedRow>,
    /// Retry rows to the dead letters, and back to the retry table.
    dead_retries: Vec<FailedRetry>,
    again_retries: Vec<FailedRetry>,
    /// Every receipt of the log, and of the retry table.
    log: Vec<(i64, i64, i64)>,
    retries: Pairs,
}

/// The error a delivery held back for its lost results carries to the
/// retry table (or the dead letters, past `max_deliveries`).
const RESULTS_LOST: &str = "listener results could not be saved: delivered again";

/// Receipts of one settling call, parsed alongside.
type Split = (Vec<String>, Vec<Receipt>);

/// Held for a settling call: when it ends, however it ends, wakes this
/// process's consumers waiting for events committed behind an open
/// transaction (its writes may have been that transaction).
struct Settling<'a>(&'a tokio::sync::Notify);

impl Drop for Settling<'_> {
    fn drop(&mut self) {
        self.0.notify_waiters();
    }
}

impl<B: Backend> Core<B> {
    /// Acknowledges deliveries; a lease is dropped once all its events are.
    /// Results before ack (see [`soiree::EventQueue::ack`]): the deliveries
    /// with a listener result lost are held back (see
    /// [`hold_back`](Self::hold_back)) and the call fails with
    /// [`Error::ResultsNotSaved`] after settling the others.
    pub(crate) async fn ack(&self, receipts: &[String]) -> Result<()> {
        let _settling = Settling(&self.settled);
        let parsed = parse_receipts(receipts)?;
        // The results of these events' listeners go first: an acknowledged
        // event's results are never lost.
        self.flush_results().await?;
        let ((receipts, parsed), lost) = self.split_lost(receipts, parsed);
        let held = self.hold_back(&lost).await?;
        let (log, retries) = split_receipts(&parsed);
        let mut stale = held.stale + self.settle_log(&log).await?;
        if !retries.is_empty() {
            let done: HashSet<i64> = self
                .backend
                .ack_retries(&retries)
                .await?
                .into_iter()
                .collect();
            for &(id, token) in &retries {
                self.retries.remove(id);
                if done.contains(&id) {
                    self.completions.retry(id, token);
                } else if !self.completions.has_retry(id, token) {
                    stale += 1;
                }
            }
        }
        self.keys_settled(&parsed, &[]);
        self.dedup.remove(&receipts);
        self.settled(stale, held.count)
    }

    /// Parts the receipts into those to settle and those whose events had
    /// a listener result lost (results before ack).
    fn split_lost(&self, receipts: &[String], parsed: Vec<Receipt>) -> (Split, Split) {
        let mut keep: Split = (Vec::with_capacity(receipts.len()), Vec::new());
        let mut lost: Split = Default::default();
        for ((receipt, parsed), lost_results) in
            receipts.iter().zip(parsed).zip(self.dedup.lost(receipts))
        {
            let to = if lost_results { &mut lost } else { &mut keep };
            to.0.push(receipt.clone());
            to.1.push(parsed);
        }
        (keep, lost)
    }

    /// Holds back deliveries whose listener results were lost: each goes to
    /// the retry table as a failure would under `Redeliver` (counted as a
    /// delivery; to the dead letters once delivered `max_deliveries`
    /// times), so that its lease completes and only it comes back, its
    /// listeners with it.
    async fn hold_back(&self, (receipts, parsed): &Split) -> Result<HeldBack> {
        if receipts.is_empty() {
            return Ok(HeldBack::default());
        }
        let failures: Vec<FailedDelivery> = receipts
            .iter()
            .map(|receipt| FailedDelivery {
                receipt: receipt.clone(),
                error: RESULTS_LOST.to_owned(),
            })
            .collect();
        let routed = self.route(parsed, &failures, true);
        let stale = self.settle_routed(receipts, parsed, &routed).await?;
        Ok(HeldBack {
            count: receipts.len(),
            stale,
        })
    }

    /// The end of a settling call: [`Error::ResultsNotSaved`] when some
    /// deliveries were held back, else [`Error::StaleLease`] when receipts
    /// named leases or retry rows this consumer no longer holds.
    fn settled(&self, stale: usize, held: usize) -> Result<()> {
        if held > 0 {
            if stale > 0 {
                self.metrics.stale_acks.inc_by(stale as u64);
            }
            return soiree::kit::held_back(&self.metrics, held)
                .map_err(|_| Error::ResultsNotSaved { deliveries: held });
        }
        self.stale(stale)
    }

    /// Fails with [`Error::StaleLease`] when receipts named leases or retry
    /// rows this consumer no longer holds.
    fn stale(&self, stale: usize) -> Result<()> {
        if stale > 0 {
            self.metrics.stale_acks.inc_by(stale as u64);
            return Err(Error::StaleLease { receipts: stale });
        }
        Ok(())
    }

    /// Marks events of held leases as done (acknowledged, failed or handed
    /// back) and drops the leases all of whose events are; returns how many
    /// receipts named a lease this consumer no longer holds.
    pub(super) async fn settle_log(&self, parsed: &[(i64, i64, i64)]) -> Result<usize> {
        if parsed.is_empty() {
            return Ok(0);
        }
        let settled = self.leases.settle(parsed, &self.completions);
        if settled.complete.is_empty() {
            return Ok(settled.stale);
        }
        // Counted as begun before the database deletes them, and as ended
        // once dropped here: a backlog read in between is read again.
        let completing = self.leases.begin_completing(&settled.complete);
        let done: HashSet<i64> = self
            .backend
            .complete(&settled.complete)
            .await?
            .into_iter()
            .collect();
        Ok(settled.stale + completing.completed(&settled, &done, &self.completions))
    }

    /// Whether [`fail`](Self::fail) dead-letters a delivery that failed on
    /// its `delivery_count`th delivery (the same rule as `fail`'s).
    pub(crate) fn dead_letters_failure(&self, delivery_count: u32) -> bool {
        match self.options.on_failure {
            FailurePolicy::Acknowledge => false,
            FailurePolicy::Redeliver => delivery_count >= self.options.max_deliveries,
            FailurePolicy::DeadLetter => true,
        }
    }

    /// Settles failed deliveries as the [`FailurePolicy`] says: dead letters
    /// with the error, or the retry table with a backoff (dead letters once
    /// delivered `max_deliveries` times), or an acknowledgement.
    pub(crate) async fn fail(&self, failures: &[FailedDelivery]) -> Result<()> {
        let _settling = Settling(&self.settled);
        let receipts: Vec<String> = failures.iter().map(|f| f.receipt.clone()).collect();
        if self.options.on_failure == FailurePolicy::Acknowledge {
            return self.ack(&receipts).await;
        }
        let parsed = parse_receipts(&receipts)?;
        self.flush_results().await?;
        let lost_results = self.dedup.lost(&receipts);
        let ((receipts, parsed), lost) = self.split_lost(&receipts, parsed);
        let failures: Vec<FailedDelivery> = failures
            .iter()
            .zip(lost_results)
            .filter(|(_, lost)| !lost)
            .map(|(failure, _)| failure.clone())
            .collect();
        let held = self.hold_back(&lost).await?;
        let redeliver = self.options.on_failure == FailurePolicy::Redeliver;
        let routed = self.route(&parsed, &failures, redeliver);
        let stale = self.settle_routed(&receipts, &parsed, &routed).await?;
        self.settled(held.stale + stale, held.count)
    }

    /// Defers deliveries (a listener snoozed, see [`soiree::EventQueue::defer`]):
    /// each becomes a row of the retry table due at its time, with its
    /// delivery count less the delivery that snoozed (a retry row made due
    /// again the same way), whatever the [`FailurePolicy`]. Durable as a
    /// retry is; measured on the database's clock from this call.
    pub(crate) async fn defer(&self, deferrals: &[DeferredDelivery]) -> Result<()> {
        let _settling = Settling(&self.settled);
        let receipts: Vec<String> = deferrals.iter().map(|d| d.receipt.clone()).collect();
        let parsed = parse_receipts(&receipts)?;
        self.flush_results().await?;
        let lost_results = self.dedup.lost(&receipts);
        let ((receipts, parsed), lost) = self.split_lost(&receipts, parsed);
        let deferrals: Vec<&DeferredDelivery> = deferrals
            .iter()
            .zip(lost_results)
            .filter(|(_, lost)| !lost)
            .map(|(deferral, _)| deferral)
            .collect();
        let held = self.hold_back(&lost).await?;
        let now = SystemTime::now();
        let mut routed = Routed::default();
        for (receipt, deferral) in parsed.iter().zip(deferrals) {
            let error = deferral.reason.replace('\0', "\u{fffd}");
            // Rounded up: never due before `until`.
            let delay = deferral.until.duration_since(now).unwrap_or_default();
            let delay_ms = i64::try_from(delay.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX);
            match *receipt {
                Receipt::Log { lease, token, row } => {
                    routed.log.push((lease, token, row));
                    let Some((pos, _)) = self.leases.row(lease, token, row) else {
                        continue;
                    };
                    routed.retry_rows.push(FailedRow {
                        lease,
                        token,
                        pos,
                        error,
                        delay_ms,
                        uncounted: 1,
                    });
                }
                Receipt::Retry { id, token } => {
                    routed.retries.push((id, token));
                    routed.again_retries.push(FailedRetry {
                        id,
                        token,
                        error,
                        delay_ms,
                        uncounted: 1,
                    });
                }
            }
        }
        let stale = self.settle_routed(&receipts, &parsed, &routed).await?;
        self.settled(held.stale + stale, held.count)
    }

    /// Writes routed failures (or deferrals) and settles their receipts;
    /// returns how many named leases or retry rows no longer held here.
    async fn settle_routed(
        &self,
        receipts: &[String],
        parsed: &[Receipt],
        routed: &Routed,
    ) -> Result<usize> {
        let (dead, settled_retries) = self.write_failures(routed).await?;
        let moved: Vec<Receipt> = routed
            .retry_rows
            .iter()
            .map(|r| Receipt::Log {
                lease: r.lease,
                token: r.token,
                row: r.pos.id,
            })
            .chain(routed.again_retries.iter().map(|r| Receipt::Retry {
                id: r.id,
                token: r.token,
            }))
            .collect();
        self.keys_settled(parsed, &moved);
        self.metrics.dead_lettered.inc_by(dead);
        let mut stale = self.settle_log(&routed.log).await?;
        if !routed.retries.is_empty() {
            self.retries.remove_all(&routed.retries);
            stale += routed
                .retries
                .len()
                .saturating_sub(usize::try_from(settled_retries).unwrap_or(0));
        }
        self.dedup.remove(receipts);
        Ok(stale)
    }

    /// Sorts failures by where the policy sends them: the retry table while
    /// a delivery has deliveries left (with `Redeliver`), else the dead
    /// letters. Receipts of events no longer held are only settled.
    fn route(&self, parsed: &[Receipt], failures: &[FailedDelivery], redeliver: bool) -> Routed {
        let max = i32::try_from(self.options.max_deliveries).unwrap_or(i32::MAX);
        let mut routed = Routed::default();
        for (receipt, failure) in parsed.iter().zip(failures) {
            let error = failure.error.replace('\0', "\u{fffd}");
            match *receipt {
                Receipt::Log { lease, token, row } => {
                    routed.log.push((lease, token, row));
                    let Some((pos, deliveries)) = self.leases.row(lease, token, row) else {
                        continue;
                    };
                    let failed = FailedRow {
                        lease,
                        token,
                        pos,
                        error,
                        delay_ms: self.options.retry_delay_ms(deliveries),
                        uncounted: 0,
                    };
                    if redeliver && deliveries < max {
                        routed.retry_rows.push(failed);
                    } else {
                        routed.dead_rows.push(failed);
                    }
                }
                Receipt::Retry { id, token } => {
                    routed.retries.push((id, token));
                    let deliveries = self.retries.deliveries(id, token).unwrap_or(max);
                    let failed = FailedRetry {
                        id,
                        token,
                        error,
                        delay_ms: self.options.retry_delay_ms(deliveries),
                        uncounted: 0,
                    };
                    if redeliver && deliveries < max {
                        routed.again_retries.push(failed);
                    } else {
                        routed.dead_retries.push(failed);
                    }
                }
            }
        }
        routed
    }

    /// Writes routed failures; returns how many went to the dead letters
    /// and how many retry rows were settled.
    async fn write_failures(&self, routed: &Routed) -> Result<(u64, u64)> {
        let mut dead = 0;
        let mut settled_retries = 0;
        if !routed.dead_rows.is_empty() {
            dead += self.backend.fail_leased(&routed.dead_rows, false).await?;
        }
        if !routed.retry_rows.is_empty() {
            self.backend.fail_leased(&routed.retry_rows, true).await?;
            self.retry_due.store(true, Ordering::Release);
        }
        if !routed.dead_retries.is_empty() {
            let moved = self
                .backend
                .fail_retries(&routed.dead_retries, false)
                .await?;
            dead += moved;
            settled_retries += moved;
        }
        if !routed.again_retries.is_empty() {
            settled_retries += self
                .backend
                .fail_retries(&routed.again_retries, true)
                .await?;
        }
        Ok((dead, settled_retries))
    }
}
