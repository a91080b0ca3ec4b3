//! Unique keys at emit: `soiree_unique_keys` holds each key with the first
//! event's id and an expiry, claimed by `INSERT … ON CONFLICT` in the
//! transaction that stores the event, so that concurrent appends of a key
//! in any number of processes store one event.

use std::time::Duration;

use soiree::{Appended, StoredEvent};

use crate::backend::{Backend, NewEvent, Param};
use crate::core::Core;
use crate::rows::Listed;
use crate::scheduled::{due_ms, now_ms};
use crate::{Driver, Error, Result};

/// Expired unique keys deleted per retention run at most.
const PRUNE_BATCH: usize = 10_000;

impl<B: Backend> Core<B> {
    /// Deletes expired unique keys (a bounded batch); returns how many.
    pub(crate) async fn prune_unique_keys(&self) -> Result<u64> {
        let max = i64::try_from(PRUNE_BATCH).unwrap_or(i64::MAX);
        let params = vec![Param::Int(now_ms()), Param::Int(max)];
        let sql = B::COMMON.prune_unique.to_owned();
        self.backend.execute(sql, params).await
    }

    /// Appends `event` unless an event with `key` was appended within its
    /// window (then nothing is stored and the holder's id is returned).
    pub(crate) async fn append_unique<DB: Driver<Backend = B>>(
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
        match store_unique::<DB>(&self.backend, &new, due, key, now, window_ms).await? {
            Some(holder) => Ok(Appended::Existing(holder)),
            None => {
                self.metrics.persisted.inc();
                self.wake();
                Ok(Appended::New)
            }
        }
    }
}

/// In one transaction: claims `key` until `now_ms + window_ms` (an expired
/// claim is replaced) and, when it did, stores the event (in the log, or
/// delayed to `due_ms`); else returns the event id holding the key.
async fn store_unique<DB: Driver>(
    backend: &DB::Backend,
    event: &NewEvent,
    due_ms: Option<i64>,
    key: &str,
    now_ms: i64,
    window_ms: i64,
) -> Result<Option<String>> {
    let sql = &<DB::Backend as Backend>::COMMON;
    let mut tx = DB::begin(backend).await?;
    let claim = vec![
        Param::Text(key.to_owned()),
        Param::MaybeText(event.event_id.clone()),
        Param::Int(now_ms.saturating_add(window_ms)),
        Param::Int(now_ms),
    ];
    let claimed = DB::fetch_in(backend, &mut tx, sql.claim_unique, claim).await?;
    if claimed.is_empty() {
        let holder = vec![Param::Text(key.to_owned())];
        let rows = DB::fetch_in(backend, &mut tx, sql.unique_holder, holder).await?;
        let holder = match rows.first() {
            Some(row) => row.string(0)?,
            None => return Err(sqlx::Error::RowNotFound.into()),
        };
        tx.rollback().await?;
        return Ok(Some(holder));
    }
    match due_ms {
        Some(due) => DB::schedule_in(backend, &mut tx, &[(event.clone(), due)]).await?,
        None => DB::insert(backend, &mut tx, std::slice::from_ref(event)).await?,
    }
    tx.commit().await?;
    Ok(None)
}
