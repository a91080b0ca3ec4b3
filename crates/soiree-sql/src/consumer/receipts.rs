//! Receipts: what a delivery's receipt names (an event of a lease, or a row
//! of the retry table), and the leases remembered after completion so that
//! a repeated acknowledgement is not taken for a stale one.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use crate::backend::Pos;
use crate::{Error, Result};

/// Leases remembered after completion, so that a repeated acknowledgement
/// (the bus retries a failed ack call) is not taken for a stale one.
const REMEMBERED_COMPLETIONS: usize = 4096;

/// `(id, token)` of leases or retry rows.
pub(crate) type Pairs = Vec<(i64, i64)>;

/// What a receipt names: an event of a lease, or a row of the retry table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Receipt {
    Log { lease: i64, token: i64, row: i64 },
    Retry { id: i64, token: i64 },
}

/// `<lease>:<token>:<row>`.
pub(crate) fn log_receipt(lease: i64, token: i64, pos: Pos) -> String {
    format!("{lease}:{token}:{}", pos.id)
}

/// `r<id>:<token>`.
pub(crate) fn retry_receipt(id: i64, token: i64) -> String {
    format!("r{id}:{token}")
}

fn parse_receipt(receipt: &str) -> Option<Receipt> {
    if let Some(rest) = receipt.strip_prefix('r') {
        let (id, token) = rest.split_once(':')?;
        return Some(Receipt::Retry {
            id: id.parse().ok()?,
            token: token.parse().ok()?,
        });
    }
    let mut parts = receipt.split(':');
    let lease = parts.next()?.parse().ok()?;
    let token = parts.next()?.parse().ok()?;
    let row = parts.next()?.parse().ok()?;
    parts
        .next()
        .is_none()
        .then_some(Receipt::Log { lease, token, row })
}

pub(crate) fn parse_receipts(receipts: &[String]) -> Result<Vec<Receipt>> {
    receipts
        .iter()
        .map(|r| parse_receipt(r).ok_or_else(|| Error::InvalidReceipt(r.clone())))
        .collect()
}

/// `(lease, token, row)` of the log's receipts, `(id, token)` of the retries'.
pub(crate) fn split_receipts(parsed: &[Receipt]) -> (Vec<(i64, i64, i64)>, Pairs) {
    let mut log = Vec::new();
    let mut retries = Vec::new();
    for receipt in parsed {
        match *receipt {
            Receipt::Log { lease, token, row } => log.push((lease, token, row)),
            Receipt::Retry { id, token } => retries.push((id, token)),
        }
    }
    (log, retries)
}

/// Leases (and retry rows, as `(-id, token)`) completed lately.
#[derive(Debug, Default)]
pub(crate) struct Completions {
    state: Mutex<Remembered>,
}

#[derive(Debug, Default)]
struct Remembered {
    order: VecDeque<(i64, i64)>,
    set: HashSet<(i64, i64)>,
}

impl Completions {
    fn lock(&self) -> MutexGuard<'_, Remembered> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remembers a completed lease.
    pub(crate) fn lease(&self, lease: i64, token: i64) {
        self.remember((lease, token));
    }

    /// Remembers a completed retry row.
    pub(crate) fn retry(&self, id: i64, token: i64) {
        self.remember((-id, token));
    }

    /// Whether the lease was completed lately.
    pub(crate) fn has_lease(&self, lease: i64, token: i64) -> bool {
        self.lock().set.contains(&(lease, token))
    }

    /// Whether the retry row was completed lately.
    pub(crate) fn has_retry(&self, id: i64, token: i64) -> bool {
        self.lock().set.contains(&(-id, token))
    }

    fn remember(&self, key: (i64, i64)) {
        let mut state = self.lock();
        if state.set.insert(key) {
            state.order.push_back(key);
        }
        if state.order.len() > REMEMBERED_COMPLETIONS
            && let Some(old) = state.order.pop_front()
        {
            state.set.remove(&old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip_and_reject_garbage() {
        let pos = Pos { tx: 7, id: 42 };
        assert_eq!(
            parse_receipt(&log_receipt(1, 2, pos)),
            Some(Receipt::Log {
                lease: 1,
                token: 2,
                row: 42
            })
        );
        assert_eq!(
            parse_receipt(&retry_receipt(3, 4)),
            Some(Receipt::Retry { id: 3, token: 4 })
        );
        for bad in ["", "1:2", "1:2:3:4", "a:b:c", "1-2-3", "r1", "r1:x", "rx:1"] {
            assert_eq!(parse_receipt(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn completions_are_remembered_for_a_while() {
        let done = Completions::default();
        done.lease(1, 2);
        done.retry(1, 3);
        assert!(done.has_lease(1, 2) && done.has_retry(1, 3));
        assert!(!done.has_lease(1, 3) && !done.has_retry(1, 2));
        for n in 0..REMEMBERED_COMPLETIONS as i64 {
            done.lease(100 + n, 0);
        }
        assert!(!done.has_lease(1, 2), "the oldest is forgotten");
    }
}
