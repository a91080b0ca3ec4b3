//! Lease keep-alive, driven by the bus (`EventQueue::extend` every
//! `lease_interval`): the leases and retry rows of the deliveries whose
//! listeners run, and of those waiting in the buffer, are extended in the
//! database, until a delivery has been out for `max_handler_time` (a stuck
//! or abandoned delivery then goes to another consumer). Leases found
//! taken over are forgotten.

use std::collections::HashSet;
use std::time::Duration;

use super::receipts::{Receipt, parse_receipts};
use crate::Result;
use crate::backend::Backend;
use crate::core::Core;

impl<B: Backend> Core<B> {
    /// How often the bus extends leases: a third of the lease timeout.
    pub(crate) fn lease_interval(&self) -> Duration {
        self.options.lease_timeout / 3
    }

    /// Extends the leases and retry rows of `receipts` (deliveries whose
    /// listeners run) and of the buffered deliveries; forgets those that
    /// were taken over.
    pub(crate) async fn extend(&self, receipts: &[String]) -> Result<()> {
        let (mut leases, mut retries) = self.buffer.holders();
        for receipt in parse_receipts(receipts)? {
            match receipt {
                Receipt::Log { lease, .. } => leases.insert(lease),
                Receipt::Retry { id, .. } => retries.insert(id),
            };
        }
        let horizon = self.options.max_handler_time;
        let leases = self.leases.to_extend(&leases, horizon);
        let retries = self.retries.to_extend(&retries, horizon);
        let mut outcome = Ok(());
        if !leases.is_empty() {
            match self.backend.extend(&leases).await {
                Ok(extended) => {
                    let extended: HashSet<i64> = extended.into_iter().collect();
                    for (lease, token) in leases {
                        if !extended.contains(&lease) {
                            tracing::warn!(
                                lease,
                                token,
                                "a lease expired and was taken over; its events will be handled elsewhere"
                            );
                            self.forget_lease(lease);
                        }
                    }
                }
                Err(err) => outcome = Err(err),
            }
        }
        if !retries.is_empty() {
            match self.backend.extend_retries(&retries).await {
                Ok(extended) => {
                    let extended: HashSet<i64> = extended.into_iter().collect();
                    for (id, _) in retries {
                        if !extended.contains(&id) {
                            self.forget_retry(id);
                        }
                    }
                }
                Err(err) => outcome = Err(err),
            }
        }
        outcome
    }
}
