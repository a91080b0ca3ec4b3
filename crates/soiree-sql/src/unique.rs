//! Unique keys at emit: `soiree_unique_keys` holds each key with the first
//! event's id and an expiry, claimed by `INSERT … ON CONFLICT` in the
//! transaction that stores the event, so that concurrent appends of a key
//! in any number of processes store one event.

use std::time::Duration;

use soiree::{Appended, StoredEvent};

use crate::backend::{Backend, NewEvent};
use crate::core::Core;
use crate::scheduled::{due_ms, now_ms};
use crate::{Error, Result};

/// Expired unique keys deleted per retention run at most.
const PRUNE_BATCH: usize = 10_000;

impl<B: Backend> Core<B> {
    /// Deletes expired unique keys (a bounded batch); returns how many.
    pub(crate) async fn prune_unique_keys(&self) -> Result<u64> {
        self.backend.prune_unique(now_ms(), PRUNE_BATCH).await
    }

    /// Appends `event` unless an event with `key` was appended within its
    /// window (then nothing is stored and the holder's id is returned).
    pub(crate) async fn append_unique(
        &self,
        event: &StoredEvent,
        key: &str,
        window: Duration,
    ) -> Result<Appended> {
        crate::topic::no_nul("the unique key", key)?;
        if key.len() > soiree::limits::MAX_EVENT_ID_LEN {
            return Err(Error::Event(soiree::Error::LimitExceeded {
                what: "unique key bytes",
                limit: soiree::limits::MAX_EVENT_ID_LEN,
                actual: key.len(),
            }));
        }
        if event.id().is_none() {
            return Err(Error::Event(soiree::Error::store(
                "a unique event needs an event id (soiree.event_id): the bus sets one",
            )));
        }
        let new = NewEvent::from_stored(event)?;
        let now = now_ms();
        let due = due_ms(event)?.filter(|due| *due > now);
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        match self
            .backend
            .append_unique(&new, due, key, now, window_ms)
            .await?
        {
            Some(holder) => Ok(Appended::Existing(holder)),
            None => {
                self.metrics.persisted.inc();
                self.wake();
                Ok(Appended::New)
            }
        }
    }
}
