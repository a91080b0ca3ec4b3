//! The outbox `INSERT` as SQL and values, for data layers that run their
//! own statements (an ORM's connection): the statement `emit_all_in`
//! executes (one per database, see [`Driver`]), with its parameters as
//! text (on PostgreSQL the statement casts them from text, which makes its
//! text differ from the store's: a statement cache keeps the two apart).

use soiree::IntoEvent;
use soiree::mutation::{MutationPayload, Mutations};

#[cfg(doc)]
use crate::Error;
use crate::{Driver, Result};

/// One statement writing events into the outbox: SQL with positional
/// parameters, their values (text or NULL, in order), and the ids of the
/// events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxInsert {
    /// The `INSERT` statement.
    pub sql: String,
    /// The parameters' values, in order: on PostgreSQL five text arrays in
    /// their text form (the statement casts them), on SQLite one JSON array.
    pub values: Vec<Option<String>>,
    /// The events' ids (`soiree.event_id`), in order.
    pub ids: Vec<String>,
}

/// Builds the statement writing `events` (what
/// [`emit_all_in`](crate::SqlStore::emit_all_in) takes) into the outbox of
/// database `DB`, or `None` when there are none. Run it in the transaction
/// of the change the events describe.
///
/// `schema` is where the store's tables are: on PostgreSQL the store's
/// `schema` option (`public` by default); on SQLite the attached
/// database's name, `main` for the store's own file.
///
/// # Examples
///
/// ```
/// use soiree_sql::outbox::outbox_insert;
///
/// let events = [("order.paid", serde_json::json!({ "order": 42 }))];
/// let insert = outbox_insert::<soiree_sql::Sqlite>("main", events).unwrap().unwrap();
/// assert!(insert.sql.starts_with("INSERT INTO \"main\".soiree_events"));
/// assert_eq!(insert.values.len(), 1);
/// assert_eq!(insert.ids.len(), 1);
/// ```
///
/// # Errors
///
/// [`Error::InvalidTopic`] or [`Error::Event`] as for `emit_in`;
/// [`Error::InvalidIdentifier`] for a schema that is not a plain
/// identifier.
pub fn outbox_insert<DB: Driver>(
    schema: &str,
    events: impl IntoIterator<Item = (impl AsRef<str>, impl IntoEvent)>,
) -> Result<Option<OutboxInsert>> {
    let (rows, ids) = crate::emit::prepare_for_log(events)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let (sql, values) = DB::outbox_statement(schema, &rows)?;
    Ok(Some(OutboxInsert { sql, values, ids }))
}

/// The statement staging one mutation's events ([`Mutations::events`]) in
/// the outbox of database `DB`, or `None` when nobody wants it.
///
/// # Examples
///
/// ```
/// use soiree::EventBus;
/// use soiree::mutation::{MutationPayload, Mutations, Operation};
/// use soiree_sql::outbox::mutation_insert;
///
/// let mutations = Mutations::new(EventBus::new()).always_stage(true);
/// let payload = MutationPayload::new(Operation::Create, "Invoice", "inv-1");
/// let insert = mutation_insert::<soiree_sql::Postgres>("public", &mutations, &payload)
///     .unwrap()
///     .unwrap();
/// assert!(insert.sql.contains("\"public\".soiree_events"));
/// assert_eq!(insert.values.len(), 5);
///
/// // Nobody listens and nothing asks to stage everything: no statement.
/// let quiet = Mutations::new(EventBus::new());
/// assert!(mutation_insert::<soiree_sql::Postgres>("public", &quiet, &payload).unwrap().is_none());
/// ```
///
/// # Errors
///
/// [`Error::Event`] for an entity type that is not a valid topic, and as
/// [`outbox_insert`].
pub fn mutation_insert<DB: Driver>(
    schema: &str,
    mutations: &Mutations,
    payload: &MutationPayload,
) -> Result<Option<OutboxInsert>> {
    let events = crate::mutation::staged_events(mutations, payload)?;
    outbox_insert::<DB>(schema, events)
}
