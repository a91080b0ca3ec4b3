//! SeaORM hooks for [`soiree`]'s mutation events: each insert, update and
//! delete made through an `ActiveModel` stages its mutation event in the
//! SQL outbox of [`soiree_sql`], **on the same connection** as the change.
//!
//! # Atomicity
//!
//! | the hook runs on | what happens |
//! |---|---|
//! | a [`DatabaseTransaction`](sea_orm::DatabaseTransaction) | the event is written in that transaction: it exists if and only if the change commits |
//! | a plain [`DatabaseConnection`](sea_orm::DatabaseConnection) | the change is committed by its own statement first; the event is a separate, auto-committed `INSERT` right after it. A crash (or a failed `INSERT`) between the two loses the event: **best effort**, as the Go package's after-commit emit |
//!
//! Run your writes in a transaction (`db.begin()` … `txn.commit()`, or
//! `db.transaction(…)`) wherever the event must not be lost. After the
//! commit, consumers find the events within their poll interval (or call
//! the store's `wake()` when the store lives in the same process).
//!
//! Only interested listeners cost anything: with nobody listening to an
//! entity's topic on the [`Mutations`]' bus, nothing is staged
//! ([`Mutations::wants`]); where listeners live in other processes, build it
//! with [`always_stage(true)`](Mutations::always_stage).
//!
//! # Hooks
//!
//! [`ActiveModelBehavior`](sea_orm::ActiveModelBehavior) has no room for
//! state, so the capture is process-wide: [`install`] it once at start-up,
//! and call [`before_save`], [`after_save`] and [`after_delete`] from the
//! entity's hooks (without an installed capture they do nothing):
//!
//! ```
//! use sea_orm::entity::prelude::*;
//!
//! #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
//! #[sea_orm(table_name = "organization_settings")]
//! pub struct Model {
//!     #[sea_orm(primary_key)]
//!     pub id: i32,
//!     pub plan: String,
//! }
//!
//! #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
//! pub enum Relation {}
//!
//! #[async_trait::async_trait]
//! impl ActiveModelBehavior for ActiveModel {
//!     async fn before_save<C: ConnectionTrait>(self, _db: &C, insert: bool) -> Result<Self, DbErr> {
//!         soiree_seaorm::before_save("OrganizationSetting", &self, insert);
//!         Ok(self)
//!     }
//!
//!     async fn after_save<C: ConnectionTrait>(model: Model, db: &C, insert: bool) -> Result<Model, DbErr> {
//!         soiree_seaorm::after_save(db, "OrganizationSetting", &model, insert).await?;
//!         Ok(model)
//!     }
//!
//!     async fn after_delete<C: ConnectionTrait>(self, db: &C) -> Result<Self, DbErr> {
//!         soiree_seaorm::after_delete(db, "OrganizationSetting", &self).await?;
//!         Ok(self)
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! `examples/seaorm` (`cargo run -p soiree-seaorm --example seaorm`) runs
//! two such entities on SQLite.

#![doc(test(attr(deny(warnings))))]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use sea_orm::sea_query::Value;
use sea_orm::sea_query::value::sea_value_to_json_value;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, IdenStatic, Iterable,
    ModelTrait, Statement,
};
use soiree::mutation::{MutationPayload, Mutations, Operation};
use soiree_sql::outbox::mutation_insert;

/// Changed columns by (entity type, primary key).
type Pending = HashMap<(String, String), Vec<String>>;

/// Stages mutation events through SeaORM connections: the [`Mutations`]
/// (listeners, interest, `mutation.detected`) and where the outbox is.
/// Cheap to clone.
///
/// # Examples
///
/// ```
/// use soiree::EventBus;
/// use soiree::mutation::Mutations;
/// use soiree_seaorm::MutationCapture;
///
/// let capture = MutationCapture::new(Mutations::new(EventBus::new())).postgres_schema("events");
/// soiree_seaorm::install(capture);
/// assert!(soiree_seaorm::installed().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct MutationCapture {
    mutations: Mutations,
    schema: String,
    /// Changed columns of updates seen by `before_save`, by entity type and
    /// primary key, until their `after_save`.
    pending: Arc<Mutex<Pending>>,
}

impl MutationCapture {
    /// Captures into the outbox with `mutations`' listeners and options;
    /// on PostgreSQL the store's tables are in schema `public`.
    pub fn new(mutations: Mutations) -> Self {
        Self {
            mutations,
            schema: "public".to_owned(),
            pending: Arc::default(),
        }
    }

    /// Sets the PostgreSQL schema of the store's tables (the store's
    /// `schema` option; default `public`).
    #[must_use]
    pub fn postgres_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The mutation eventer.
    pub fn mutations(&self) -> &Mutations {
        &self.mutations
    }

    /// Stages one mutation's events on `db` (see [the crate](crate) for
    /// what a transaction changes). Returns the ids of the events written:
    /// none when nobody wants the mutation.
    ///
    /// # Errors
    ///
    /// [`DbErr::Custom`] for a MySQL connection, an invalid entity type or
    /// schema; the database's error when the `INSERT` fails.
    pub async fn record<C: ConnectionTrait>(
        &self,
        db: &C,
        payload: &MutationPayload,
    ) -> Result<Vec<String>, DbErr> {
        let insert = match db.get_database_backend() {
            DbBackend::Postgres => {
                mutation_insert::<soiree_sql::Postgres>(&self.schema, &self.mutations, payload)
            }
            // The store's own database file, as SQLite names it.
            DbBackend::Sqlite => {
                mutation_insert::<soiree_sql::Sqlite>("main", &self.mutations, payload)
            }
            other => {
                return Err(DbErr::Custom(format!(
                    "soiree-seaorm: {other:?} has no soiree outbox (PostgreSQL and SQLite do)"
                )));
            }
        }
        .map_err(|err| DbErr::Custom(format!("soiree-seaorm: {err}")))?;
        let Some(insert) = insert else {
            return Ok(Vec::new());
        };
        let values = insert.values.into_iter().map(Value::String);
        db.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            insert.sql,
            values,
        ))
        .await?;
        Ok(insert.ids)
    }

    /// For `before_save`: remembers which columns an update sets, so that
    /// [`after_save`](Self::after_save) can report them as changed (by
    /// entity type and primary key: an update that fails leaves its entry
    /// until the row's next save replaces it).
    pub fn before_save<A: ActiveModelTrait>(&self, entity_type: &str, active: &A, insert: bool) {
        if insert || !self.mutations.wants(entity_type) {
            return;
        }
        let Some(key) = active
            .get_primary_key_value()
            .map(|k| key_text(k.into_iter()))
        else {
            return;
        };
        let changed: Vec<String> = <A::Entity as EntityTrait>::Column::iter()
            .filter(|column| active.get(*column).is_set())
            .map(|column| column.as_str().to_owned())
            .collect();
        self.lock().insert((entity_type.to_owned(), key), changed);
    }

    /// For `after_save`: stages `OpCreate` (`insert`) or `OpUpdateOne` with
    /// the saved row as `after`. Changed fields: the non-null columns of a
    /// created row; for an update, the columns set on the `ActiveModel` when
    /// [`before_save`](Self::before_save) saw it (else none).
    ///
    /// # Errors
    ///
    /// As [`record`](Self::record).
    pub async fn after_save<C, M>(
        &self,
        db: &C,
        entity_type: &str,
        model: &M,
        insert: bool,
    ) -> Result<Vec<String>, DbErr>
    where
        C: ConnectionTrait,
        M: ModelTrait,
    {
        let id = key_text(model.get_primary_key_value().into_iter());
        let pending = self.lock().remove(&(entity_type.to_owned(), id.clone()));
        if !self.mutations.wants(entity_type) {
            return Ok(Vec::new());
        }
        let mut row = serde_json::Map::new();
        for column in <M::Entity as EntityTrait>::Column::iter() {
            row.insert(
                column.as_str().to_owned(),
                sea_value_to_json_value(&model.get(column)),
            );
        }
        let (operation, changed) = if insert {
            let changed = row
                .iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(name, _)| name.clone())
                .collect();
            (Operation::Create, changed)
        } else {
            (Operation::UpdateOne, pending.unwrap_or_default())
        };
        let payload = MutationPayload::new(operation, entity_type, id)
            .with_changed_fields(changed)
            .with_after(serde_json::Value::Object(row));
        self.record(db, &payload).await
    }

    /// For `after_delete`: stages `OpDeleteOne` with the `ActiveModel`'s
    /// known columns as `before`.
    ///
    /// # Errors
    ///
    /// As [`record`](Self::record).
    pub async fn after_delete<C, A>(
        &self,
        db: &C,
        entity_type: &str,
        active: &A,
    ) -> Result<Vec<String>, DbErr>
    where
        C: ConnectionTrait,
        A: ActiveModelTrait,
    {
        if !self.mutations.wants(entity_type) {
            return Ok(Vec::new());
        }
        let id = active
            .get_primary_key_value()
            .map(|key| key_text(key.into_iter()))
            .unwrap_or_default();
        let mut row = serde_json::Map::new();
        for column in <A::Entity as EntityTrait>::Column::iter() {
            if let Some(value) = active.get(column).into_value() {
                row.insert(column.as_str().to_owned(), sea_value_to_json_value(&value));
            }
        }
        let payload = MutationPayload::new(Operation::DeleteOne, entity_type, id)
            .with_before(serde_json::Value::Object(row));
        self.record(db, &payload).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A primary key as text: its value (a string as is), parts joined by `,`.
fn key_text(values: impl Iterator<Item = Value>) -> String {
    values
        .map(|value| match sea_value_to_json_value(&value) {
            serde_json::Value::String(text) => text,
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The process-wide capture the hook functions use.
static INSTALLED: RwLock<Option<MutationCapture>> = RwLock::new(None);

/// Makes `capture` the process-wide capture of [`before_save`],
/// [`after_save`] and [`after_delete`] (replacing any earlier one).
pub fn install(capture: MutationCapture) {
    *INSTALLED.write().unwrap_or_else(|e| e.into_inner()) = Some(capture);
}

/// Removes the process-wide capture: the hooks do nothing again.
pub fn uninstall() {
    *INSTALLED.write().unwrap_or_else(|e| e.into_inner()) = None;
}

/// The process-wide capture, if one is installed.
pub fn installed() -> Option<MutationCapture> {
    INSTALLED.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// [`MutationCapture::before_save`] with the installed capture (nothing
/// without one).
pub fn before_save<A: ActiveModelTrait>(entity_type: &str, active: &A, insert: bool) {
    if let Some(capture) = installed() {
        capture.before_save(entity_type, active, insert);
    }
}

/// [`MutationCapture::after_save`] with the installed capture (nothing
/// without one).
///
/// # Errors
///
/// As [`MutationCapture::record`].
pub async fn after_save<C, M>(
    db: &C,
    entity_type: &str,
    model: &M,
    insert: bool,
) -> Result<Vec<String>, DbErr>
where
    C: ConnectionTrait,
    M: ModelTrait,
{
    match installed() {
        Some(capture) => capture.after_save(db, entity_type, model, insert).await,
        None => Ok(Vec::new()),
    }
}

/// [`MutationCapture::after_delete`] with the installed capture (nothing
/// without one).
///
/// # Errors
///
/// As [`MutationCapture::record`].
pub async fn after_delete<C, A>(db: &C, entity_type: &str, active: &A) -> Result<Vec<String>, DbErr>
where
    C: ConnectionTrait,
    A: ActiveModelTrait,
{
    match installed() {
        Some(capture) => capture.after_delete(db, entity_type, active).await,
        None => Ok(Vec::new()),
    }
}
