//! Loading claimed rows into the buffer: parsing them (rows that are not
//! events go to the dead letters), prefetching their listeners' successes
//! for the dedup cache, and checking their keys with `ordered_by_key`.

use std::collections::HashMap;

use soiree::{Delivery, StoredEvent};

use super::buffer::Incoming;
use super::leases::Held;
use super::receipts::{Pairs, Receipt, log_receipt, retry_receipt};
use super::retries::HeldRetry;
use crate::Result;
use crate::backend::{
    Backend, ClaimedRows, DeadRow, FailedRetry, LeaseRow, Pos, RawEvent, RetryRow,
};
use crate::core::Core;
use crate::ordering::Blockers;

/// A loaded event: what names it, its receipt, the event, its key and
/// position (`ordered_by_key`), its delivery count.
type Loaded = (Receipt, String, StoredEvent, Option<(String, Pos)>, u32);

impl<B: Backend> Core<B> {
    /// Reads a lease's events into the buffer; rows that are not events go
    /// to the dead letters.
    pub(super) async fn load(&self, lease: LeaseRow) -> Result<()> {
        self.load_claimed(lease, None).await
    }

    /// [`load`](Self::load) of a lease whose claim may have read its rows
    /// and their listeners' successes already (`claimed`).
    pub(super) async fn load_claimed(
        &self,
        lease: LeaseRow,
        claimed: Option<ClaimedRows>,
    ) -> Result<()> {
        let count = u32::try_from(lease.deliveries.max(1)).unwrap_or(u32::MAX);
        let ordered = self.options.ordered_by_key;
        let (rows, handled) = match claimed {
            Some(claimed) => {
                let mut rows = Vec::with_capacity(claimed.len());
                let mut handled = HashMap::with_capacity(claimed.len());
                for (row, event_id, handlers) in claimed {
                    handled.insert(row.pos, (event_id, handlers));
                    rows.push(row);
                }
                (rows, Some(handled))
            }
            None => (self.backend.read(&lease).await?, None),
        };
        let ready = self.read_events(&lease, rows).await?;
        if ready.is_empty() {
            self.backend.complete(&[(lease.id, lease.token)]).await?;
            return Ok(());
        }
        let by_event = match handled.and_then(|handled| successes_by_event(&ready, handled)) {
            Some(by_event) => by_event,
            None => {
                self.prefetch_successes(ready.iter().map(|(_, event, _)| event))
                    .await
            }
        };
        let checked = if ordered {
            let keys = ready
                .iter()
                .filter_map(|(pos, _, key)| Some((key.as_deref()?, *pos)));
            self.check_keys(keys, Some((lease.id, lease.token)), &[])
                .await?
        } else {
            None
        };
        let n = ready.len();
        self.leases.insert(
            lease.id,
            Held {
                token: lease.token,
                total: n,
                deliveries: lease.deliveries,
                pending: ready.iter().map(|(pos, _, _)| pos.id).collect(),
                rows: ready.iter().map(|(pos, _, _)| *pos).collect(),
                out_count: 0,
                out_since: None,
                completing: 0,
            },
        );
        let incoming = ready.into_iter().map(|(pos, event, key)| {
            let source = Receipt::Log {
                lease: lease.id,
                token: lease.token,
                row: pos.id,
            };
            let receipt = log_receipt(lease.id, lease.token, pos);
            (source, receipt, event, key.map(|key| (key, pos)), count)
        });
        self.buffer_loaded(incoming, by_event, checked.as_ref());
        self.metrics.dequeued.inc_by(n as u64);
        if count > 1 {
            self.metrics.redelivered.inc_by(n as u64);
        }
        Ok(())
    }

    /// Parses a lease's rows: the events, with their positions and (with
    /// `ordered_by_key`) keys; rows that are not events are moved to the
    /// dead letters.
    async fn read_events(
        &self,
        lease: &LeaseRow,
        rows: Vec<RawEvent>,
    ) -> Result<Vec<(Pos, StoredEvent, Option<String>)>> {
        let ordered = self.options.ordered_by_key;
        let mut ready = Vec::with_capacity(rows.len());
        let mut dead = Vec::new();
        for raw in rows {
            match raw.parse() {
                Ok(event) => ready.push((raw.pos, event, raw.key.filter(|_| ordered))),
                Err(error) => dead.push(DeadRow {
                    event: raw,
                    error,
                    deliveries: lease.deliveries,
                }),
            }
        }
        if !dead.is_empty() {
            // On failure the lease is not taken on: it expires and comes back.
            self.backend.dead_letter_rows(&dead).await?;
            tracing::warn!(
                count = dead.len(),
                "rows that are not events moved to the dead letters"
            );
            self.metrics.dead_lettered.inc_by(dead.len() as u64);
        }
        Ok(ready)
    }

    /// Buffers claimed rows of the retry table; those delivered too often
    /// (their consumers died) or that are not events go to the dead letters.
    pub(super) async fn load_retries(&self, rows: Vec<RetryRow>) -> Result<()> {
        let ready = self.parse_retries(rows).await?;
        if ready.is_empty() {
            return Ok(());
        }
        let by_event = self
            .prefetch_successes(ready.iter().map(|(_, event)| event))
            .await;
        let checked = if self.options.ordered_by_key {
            let claimed: Pairs = ready.iter().map(|(row, _)| (row.id, row.token)).collect();
            let keys = ready
                .iter()
                .filter_map(|(row, _)| Some((row.event.key.as_deref()?, row.event.pos)));
            self.check_keys(keys, None, &claimed).await?
        } else {
            None
        };
        let n = ready.len();
        for (row, _) in &ready {
            self.retries.insert(
                row.id,
                HeldRetry {
                    token: row.token,
                    deliveries: row.deliveries,
                    out: None,
                },
            );
        }
        let ordered = self.options.ordered_by_key;
        let incoming = ready.into_iter().map(|(row, event)| {
            let source = Receipt::Retry {
                id: row.id,
                token: row.token,
            };
            let count = u32::try_from(row.deliveries.max(1)).unwrap_or(1);
            let key = row.event.key.filter(|_| ordered);
            let receipt = retry_receipt(row.id, row.token);
            (
                source,
                receipt,
                event,
                key.map(|key| (key, row.event.pos)),
                count,
            )
        });
        self.buffer_loaded(incoming, by_event, checked.as_ref());
        self.metrics.dequeued.inc_by(n as u64);
        self.metrics.redelivered.inc_by(n as u64);
        Ok(())
    }

    /// The rows that are events and not delivered too often; the others
    /// are moved to the dead letters.
    async fn parse_retries(&self, rows: Vec<RetryRow>) -> Result<Vec<(RetryRow, StoredEvent)>> {
        let max = i32::try_from(self.options.max_deliveries).unwrap_or(i32::MAX);
        let mut ready = Vec::with_capacity(rows.len());
        let mut dead = Vec::new();
        for row in rows {
            if row.deliveries > max {
                let error = format!(
                    "delivered {} times (max {max}) without acknowledgement",
                    row.deliveries
                );
                dead.push(FailedRetry {
                    id: row.id,
                    token: row.token,
                    error,
                    delay_ms: 0,
                    uncounted: 0,
                });
                continue;
            }
            match row.event.parse() {
                Ok(event) => ready.push((row, event)),
                Err(error) => dead.push(FailedRetry {
                    id: row.id,
                    token: row.token,
                    error,
                    delay_ms: 0,
                    uncounted: 0,
                }),
            }
        }
        if !dead.is_empty() {
            let moved = self.backend.fail_retries(&dead, false).await?;
            self.metrics.dead_lettered.inc_by(moved);
        }
        Ok(ready)
    }

    /// Puts loaded events in the buffer, after their listeners' successes
    /// (`by_event`) are in the dedup cache: the bus's lookups then need no
    /// round trip.
    fn buffer_loaded(
        &self,
        loaded: impl Iterator<Item = Loaded>,
        mut by_event: HashMap<String, Vec<String>>,
        checked: Option<&(u64, Blockers)>,
    ) {
        let (low, _) = loaded.size_hint();
        let mut known = Vec::with_capacity(low);
        let mut incoming: Vec<Incoming> = Vec::with_capacity(low);
        for (source, receipt, event, key, delivery_count) in loaded {
            if let Some(event_id) = event.id() {
                // A second event of the same id shares the first's entry.
                let handlers = by_event.remove(event_id).unwrap_or_default();
                known.push((receipt.clone(), event_id.to_owned(), handlers));
            }
            let delivery = Delivery {
                receipt,
                event,
                delivery_count,
            };
            incoming.push((source, delivery, key));
        }
        // Before any dequeue can take them.
        self.dedup.insert_many(known);
        self.buffer.push(incoming, checked);
    }

    /// The handler successes of these events, by event id (empty when they
    /// cannot be read: the bus then asks per listener).
    async fn prefetch_successes<'a>(
        &self,
        events: impl Iterator<Item = &'a StoredEvent>,
    ) -> HashMap<String, Vec<String>> {
        let event_ids: Vec<String> = events
            .filter_map(|event| event.id().map(str::to_owned))
            .collect();
        let mut by_event: HashMap<String, Vec<String>> = HashMap::new();
        if event_ids.is_empty() {
            return by_event;
        }
        match self.backend.succeeded(&event_ids).await {
            Ok(done) => {
                for (event_id, handler) in done {
                    by_event.entry(event_id).or_default().push(handler);
                }
            }
            Err(err) => tracing::debug!(%err, "cannot prefetch handler successes"),
        }
        by_event
    }
}

/// The successes a claim read with its rows (`handled`: by position, the
/// log's event id column and its handler ids), by event id; `None` when
/// an event's id is not its row's event id column (a row written by other
/// means than the store's statements): they are then looked up by the
/// events' ids.
fn successes_by_event(
    ready: &[(Pos, StoredEvent, Option<String>)],
    mut handled: HashMap<Pos, (Option<String>, Vec<String>)>,
) -> Option<HashMap<String, Vec<String>>> {
    let mut by_event = HashMap::new();
    for (pos, event, _) in ready {
        let Some(event_id) = event.id() else { continue };
        let (column, handlers) = handled.remove(pos)?;
        if column.as_deref() != Some(event_id) {
            return None;
        }
        if !handlers.is_empty() {
            // A second event of the same id found the same successes.
            by_event.entry(event_id.to_owned()).or_insert(handlers);
        }
    }
    Some(by_event)
}
