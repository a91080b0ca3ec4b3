//! Mutation events staged in the caller's transaction: a mutation event
//! exists if and only if its change committed.
//!
//! [`PostgresStore::record`](crate::PostgresStore::record) and
//! [`SqliteStore::record`](crate::SqliteStore::record) write the events one
//! mutation becomes ([`Mutations::events`]: the entity's own event, and
//! `mutation.detected` when that is on) into the outbox on the caller's
//! connection, inside the caller's transaction. Nothing is written when
//! nobody wants the mutation ([`Mutations::wants`], checked live); where
//! the listeners run in other processes, build the [`Mutations`] with
//! [`always_stage(true)`](Mutations::always_stage).

use soiree::Event;
use soiree::mutation::{MutationPayload, Mutations};

use crate::{Error, Result};

/// The `(topic, event)` pairs `emit_all_in` takes, for one mutation.
pub(crate) fn staged_events(
    mutations: &Mutations,
    payload: &MutationPayload,
) -> Result<Vec<(String, Event)>> {
    let events = mutations.events(payload).map_err(Error::Event)?;
    Ok(events
        .into_iter()
        .map(|event| (event.topic().to_owned(), event))
        .collect())
}

#[cfg(feature = "postgres")]
impl crate::PostgresStore {
    /// Stages one mutation's events in the caller's transaction (or on any
    /// connection): they reach the listeners when, and only if, that
    /// transaction commits. Returns the ids of the events written: none
    /// when nobody wants the mutation ([`Mutations::wants`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use soiree::mutation::{MutationPayload, Mutations, Operation};
    ///
    /// # #[allow(dead_code)]
    /// # async fn demo(store: soiree_sql::PostgresStore, mutations: Mutations) -> soiree_sql::Result<()> {
    /// let mut tx = store.begin().await?;
    /// sqlx::query("UPDATE organization_settings SET billing_email = 'a@b.c' WHERE id = 'os-1'")
    ///     .execute(&mut *tx)
    ///     .await?;
    /// let payload = MutationPayload::new(Operation::UpdateOne, "OrganizationSetting", "os-1")
    ///     .with_changed_fields(["billing_email"]);
    /// store.record(&mut tx, &mutations, &payload).await?;
    /// store.commit(tx).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Event`] for an entity type that is not a valid topic, and
    /// as for [`emit_all_in`](Self::emit_all_in).
    ///
    /// # Cancel safety
    ///
    /// As for [`emit_in`](Self::emit_in).
    pub async fn record(
        &self,
        conn: &mut sqlx::PgConnection,
        mutations: &Mutations,
        payload: &MutationPayload,
    ) -> Result<Vec<String>> {
        let events = staged_events(mutations, payload)?;
        self.emit_all_in(conn, events).await
    }
}

#[cfg(feature = "sqlite")]
impl crate::SqliteStore {
    /// Stages one mutation's events in the caller's transaction: they reach
    /// the listeners when, and only if, that transaction commits. Returns
    /// the ids of the events written: none when nobody wants the mutation
    /// ([`Mutations::wants`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::EventBus;
    /// use soiree::mutation::{MutationPayload, Mutations, Operation};
    /// use soiree_sql::SqliteStore;
    ///
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("soiree-doc-record-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let store = SqliteStore::open(dir.join("app.db")).await?;
    /// let bus = EventBus::builder().store(store.clone()).build()?;
    /// let mutations = Mutations::new(bus.clone());
    /// mutations.add_named_mutation_listener("billing", "OrganizationSetting", |_ctx, payload| async move {
    ///     println!("reconcile billing of {}", payload.entity_id);
    ///     Ok(())
    /// })?;
    /// bus.start()?;
    ///
    /// let mut tx = store.begin().await?;
    /// // … your own writes on `&mut *tx` …
    /// let payload = MutationPayload::new(Operation::Create, "OrganizationSetting", "os-1");
    /// let ids = store.record(&mut tx, &mutations, &payload).await?;
    /// store.commit(tx).await?;
    /// assert_eq!(ids.len(), 1);
    ///
    /// bus.wait_for_idle().await;
    /// bus.close().await?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Event`] for an entity type that is not a valid topic, and
    /// as for [`emit_all_in`](Self::emit_all_in).
    ///
    /// # Cancel safety
    ///
    /// As for [`emit_in`](Self::emit_in).
    pub async fn record(
        &self,
        conn: &mut sqlx::SqliteConnection,
        mutations: &Mutations,
        payload: &MutationPayload,
    ) -> Result<Vec<String>> {
        let events = staged_events(mutations, payload)?;
        self.emit_all_in(conn, events).await
    }
}
