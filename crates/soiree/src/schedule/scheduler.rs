//! Delayed events held by the bus itself: without a store, or with a store
//! that has no queue (the event is persisted at emit, and dispatched in
//! this process at its due time). One tokio timer per event, in a bounded
//! map, each cancellable by event id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use super::clock;
use crate::bus::BusInner;
use crate::{Error, Event};

/// The most events one bus holds for later: past it, a delayed emit is
/// refused with [`Error::QueueFull`] (a store that schedules holds any
/// number).
pub(crate) const MAX_SCHEDULED: usize = 100_000;

/// The bus's delayed events, by a sequence number.
#[derive(Debug, Default)]
pub(crate) struct Scheduler {
    entries: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
    closed: AtomicBool,
}

#[derive(Debug)]
struct Entry {
    event_id: String,
    topic: String,
    due: SystemTime,
    cancel: CancellationToken,
}

impl Scheduler {
    fn entries(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds `event` until `due`, then dispatches it on `bus` (detached:
    /// its listeners' errors reach the error handler, or the log).
    pub(crate) fn schedule(
        &self,
        bus: &Arc<BusInner>,
        event: Event,
        due: SystemTime,
    ) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        {
            let mut entries = self.entries();
            if entries.len() >= MAX_SCHEDULED {
                return Err(Error::QueueFull);
            }
            entries.insert(
                seq,
                Entry {
                    event_id: event.id().unwrap_or_default(),
                    topic: event.topic().to_owned(),
                    due,
                    cancel: cancel.clone(),
                },
            );
        }
        let deadline = clock::deadline(due);
        let bus = Arc::downgrade(bus);
        drop(runtime.spawn(fire(bus, seq, deadline, cancel, event)));
        Ok(())
    }

    /// Cancels every delayed event with this id that is not dispatched yet;
    /// reports whether there was one.
    pub(crate) fn cancel(&self, event_id: &str) -> bool {
        let mut entries = self.entries();
        let chosen: Vec<u64> = entries
            .iter()
            .filter(|(_, entry)| entry.event_id == event_id)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &chosen {
            if let Some(entry) = entries.remove(seq) {
                entry.cancel.cancel();
            }
        }
        !chosen.is_empty()
    }

    /// The delayed events held, soonest first: (event id, topic, due time).
    pub(crate) fn listed(&self) -> Vec<(String, String, SystemTime)> {
        let mut listed: Vec<(String, String, SystemTime)> = self
            .entries()
            .values()
            .map(|entry| (entry.event_id.clone(), entry.topic.clone(), entry.due))
            .collect();
        listed.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
        listed
    }

    /// Drops every delayed event (the bus closes), loudly.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let dropped: Vec<Entry> = self.entries().drain().map(|(_, entry)| entry).collect();
        for entry in &dropped {
            entry.cancel.cancel();
        }
        if !dropped.is_empty() {
            let ids: Vec<&str> = dropped
                .iter()
                .take(10)
                .map(|e| e.event_id.as_str())
                .collect();
            tracing::warn!(
                count = dropped.len(),
                first_ids = ?ids,
                "the bus closed with delayed events not yet due: they are not delivered \
                 (use a store that schedules, MemoryStore::queue() or a durable one, to keep them)"
            );
        }
    }

    /// Takes the entry to fire it; `false` when it was cancelled.
    fn take(&self, seq: u64) -> bool {
        self.entries().remove(&seq).is_some()
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        if !self.closed.load(Ordering::Acquire) {
            self.close();
        }
    }
}

async fn fire(
    bus: Weak<BusInner>,
    seq: u64,
    deadline: tokio::time::Instant,
    cancel: CancellationToken,
    event: Event,
) {
    tokio::select! {
        biased;
        () = cancel.cancelled() => return,
        () = tokio::time::sleep_until(deadline) => {}
    }
    let Some(core) = bus.upgrade() else { return };
    if !core.scheduled.take(seq) {
        return;
    }
    crate::bus::dispatch_due(&core, event).await;
}
