//! Transactional listeners: a listener that runs inside a transaction on the
//! store's database, whose writes commit together with its success record,
//! fenced by its delivery's lease (see [`SqlStore::on_tx`]).
//!
//! The bus knows nothing of it: the store wraps the listener into an
//! ordinary named listener that begins the transaction, runs it, and ends
//! the transaction with the fence and the success record (`fence.rs`).

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use soiree::{BoxError, EventBus, EventContext, IntoEvent, ListenerId, Permanent};
use sqlx::Transaction;

use crate::fence::{Settle, TxFence};
use crate::{Driver, Error, Result, SqlStore};

/// The transaction of one run of a transactional listener
/// ([`SqlStore::on_tx`]): use it as the connection of your statements
/// (`.execute(&mut *tx)`), emit follow-up events in it
/// ([`emit`](Self::emit)), and hand it back when you are done. The store
/// then checks the delivery's lease, records the listener's success and
/// commits, all in it.
///
/// It cannot be made, committed or rolled back by the listener: the only
/// way to succeed is to return the transaction it was given, so that no
/// write of a successful run can miss the commit that records the success.
pub struct Tx<DB: Driver> {
    tx: Transaction<'static, DB>,
    store: SqlStore<DB>,
}

impl<DB: Driver> Tx<DB> {
    /// Writes a follow-up event in this transaction: it is delivered if, and
    /// only if, the listener's run commits. See
    /// [`SqlStore::emit_in`]; returns the event's id.
    ///
    /// # Errors
    ///
    /// As for [`SqlStore::emit_in`].
    ///
    /// # Cancel safety
    ///
    /// A cancelled call may or may not have inserted the row, in this
    /// transaction: fail the run when in doubt, so that it rolls back.
    pub async fn emit(&mut self, topic: &str, event: impl IntoEvent) -> Result<String> {
        self.store.emit_in(&mut self.tx, topic, event).await
    }

    /// The underlying sqlx transaction, for APIs that take one. Do not
    /// commit or roll it back: return the `Tx` from the listener instead.
    pub fn transaction(&mut self) -> &mut Transaction<'static, DB> {
        &mut self.tx
    }
}

impl<DB: Driver> Deref for Tx<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: Driver> DerefMut for Tx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

impl<DB: Driver> fmt::Debug for Tx<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<DB: Driver> SqlStore<DB> {
    /// Registers a transactional listener on `bus` (whose store must be
    /// this store): `listener` runs inside a transaction on this store's
    /// database; its writes, the events it emits in it ([`Tx::emit`]) and
    /// its success record commit together, or not at all. Its side effects
    /// in the database are then effectively once: a redelivered event
    /// finds the success record and skips the listener.
    ///
    /// Before committing, the store checks in the same transaction that the
    /// delivery's lease (or claimed retry row) still has the fencing token
    /// the event was delivered under and has not expired. When it was
    /// taken over (the listener outlived `lease_timeout` and
    /// `max_handler_time`, or its consumer lost the database for that
    /// long), the transaction is rolled back and the listener fails with
    /// [`Error::LeaseLost`], not retried ([`Permanent`]): the consumer that
    /// took the event over runs it. Tell it with [`Error::is_lease_lost`].
    ///
    /// `name` is the listener's stable id, as for
    /// [`EventBus::on_named`].
    ///
    /// When the listener is the event's last one to run for this consumer
    /// group ([`EventContext::settles_delivery`]: the listeners before it
    /// succeeded, none follows), its transaction also acknowledges the
    /// delivery: the event is recorded as done in its lease, or its retry
    /// row is deleted. A crash between the commit and the bus's own
    /// acknowledgement then delivers the event to nobody again (without it,
    /// the event would be delivered again and the listener skipped). The
    /// bus's acknowledgement that follows finds it done. The cost: the
    /// results of the listeners before it are written first (one round trip
    /// when any are waiting), and one more row in the transaction. Otherwise
    /// the bus acknowledges the event after its listeners ran, as for any
    /// listener.
    ///
    /// On SQLite the transaction is a write transaction on the store's
    /// writer connection (`BEGIN IMMEDIATE`): the store's own writes wait
    /// while a transactional listener runs. Keep such listeners short.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use soiree::EventBus;
    /// use soiree_sql::SqliteStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = SqliteStore::open("shop.db").await?;
    /// let bus = EventBus::builder().store(store.clone()).build()?;
    /// store.on_tx(&bus, "invoicing", "order.paid", |ctx, mut tx| async move {
    ///     sqlx::query("INSERT INTO invoices (order_event) VALUES (?1)")
    ///         .bind(ctx.event_id())
    ///         .execute(&mut *tx)
    ///         .await?;
    ///     tx.emit("invoice.created", serde_json::json!({})).await?;
    ///     Ok(tx)
    /// })?;
    /// bus.start()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NotThisStore`] (as a store error) when `bus` was not built
    /// with this store (or a clone of it); otherwise as for
    /// [`EventBus::on_named`] (an invalid pattern, a name in use).
    pub fn on_tx<F, Fut>(
        &self,
        bus: &EventBus,
        name: &str,
        pattern: &str,
        listener: F,
    ) -> soiree::Result<ListenerId>
    where
        F: Fn(EventContext, Tx<DB>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Tx<DB>, BoxError>> + Send + 'static,
    {
        self.is_store_of(bus, name)?;
        let store = self.clone();
        let listener = Arc::new(listener);
        bus.on_named(name, pattern, move |ctx| {
            let store = store.clone();
            let listener = Arc::clone(&listener);
            async move { run(&store, &*listener, ctx).await }
        })
    }
}

impl<DB: Driver> SqlStore<DB> {
    /// Whether `bus` runs on this store (a clone of it: the same consumer,
    /// whose in-memory state the acknowledgement in the transaction
    /// updates), else [`Error::NotThisStore`].
    fn is_store_of(&self, bus: &EventBus, listener: &str) -> Result<()> {
        let theirs = bus.store().and_then(|store| store.as_any());
        let bus_store = match theirs.and_then(|any| any.downcast_ref::<SqlStore<DB>>()) {
            Some(theirs) if Arc::ptr_eq(&theirs.core, &self.core) => return Ok(()),
            Some(theirs) => format!(
                "another store ({}, group {})",
                theirs.location(),
                theirs.group()
            ),
            None if bus.store().is_none() => "no store".to_owned(),
            None => "a store of another kind".to_owned(),
        };
        Err(Error::NotThisStore {
            listener: listener.to_owned(),
            store: format!("{}, group {}", self.location(), self.group()),
            bus_store,
        })
    }
}

/// One run of a transactional listener: begin, run, fence and record,
/// commit (or roll back).
async fn run<DB, F, Fut>(
    store: &SqlStore<DB>,
    listener: &F,
    ctx: EventContext,
) -> std::result::Result<(), BoxError>
where
    DB: Driver,
    F: Fn(EventContext, Tx<DB>) -> Fut,
    Fut: Future<Output = std::result::Result<Tx<DB>, BoxError>>,
{
    let handler_id = ctx.listener_id().as_str().to_owned();
    let not_delivered = |reason| {
        soiree::permanent(Error::NotDelivered {
            listener: handler_id.clone(),
            reason,
        })
    };
    let Some(receipt) = ctx.receipt().map(str::to_owned) else {
        return Err(not_delivered("has no receipt"));
    };
    let Some(event_id) = ctx.event_id() else {
        return Err(not_delivered("has no event id"));
    };
    let Ok([receipt]) = <[_; 1]>::try_from(crate::consumer::parse_receipts(&[receipt])?) else {
        return Err(not_delivered("has no single receipt"));
    };
    // The last listener of the delivery acknowledges it in its transaction.
    // The results of the listeners that ran before it go first, as before
    // any acknowledgement (on SQLite they could not wait for the write lock
    // the transaction holds).
    let mut settles = ctx.settles_delivery();
    if settles && let Err(err) = store.core.flush_results().await {
        // Not this listener's failure: the bus acknowledges after it, as
        // for any listener (that acknowledgement writes the results first
        // too).
        tracing::debug!(%err, "results not written; the bus acknowledges the delivery instead");
        settles = false;
    }
    let tx = Tx {
        tx: store.begin().await?,
        store: store.clone(),
    };
    // An error drops the transaction, which rolls it back.
    let Tx { mut tx, .. } = listener(ctx, tx).await?;
    let fence = TxFence {
        receipt,
        group: store.group(),
        event_id: &event_id,
        handler_id: &handler_id,
        settles,
    };
    match DB::fence_in(&store.core.backend, &mut tx, &fence).await? {
        Settle::Recorded => {
            store.commit(tx).await?;
            if settles && let crate::consumer::Receipt::Retry { id, token } = receipt {
                // The bus's acknowledgement finds the row gone: done here,
                // not stale.
                store.core.completions.retry(id, token);
            }
            tracing::debug!(
                event_id,
                listener = handler_id,
                acknowledged = settles,
                "transactional listener committed"
            );
            Ok(())
        }
        Settle::AlreadyHandled => {
            // An earlier delivery committed this work: keep it once.
            tx.rollback().await?;
            tracing::debug!(
                event_id,
                listener = handler_id,
                "transactional listener already committed for this event; rolled back"
            );
            Ok(())
        }
        Settle::Fenced => {
            // Dropping it rolls back too, should the rollback fail.
            let _ = tx.rollback().await;
            Err(soiree::permanent(Error::LeaseLost {
                listener: handler_id,
                event_id,
            }))
        }
    }
}

impl Error {
    /// Whether `error` (as the bus reports a listener's failure) is a
    /// transactional listener's [`Error::LeaseLost`]: its lease was taken
    /// over and its transaction rolled back.
    pub fn is_lease_lost(error: &soiree::Error) -> bool {
        let soiree::Error::Listener { source, .. } = error else {
            return false;
        };
        let inner: &(dyn std::error::Error + 'static) = match source.downcast_ref::<Permanent>() {
            Some(permanent) => permanent.get_ref(),
            None => &**source,
        };
        matches!(inner.downcast_ref::<Error>(), Some(Error::LeaseLost { .. }))
    }
}
