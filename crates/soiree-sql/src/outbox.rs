//! The outbox `INSERT` as SQL and values, for data layers that run their
//! own statements (an ORM's connection): what `emit_all_in` executes,
//! without sqlx.

use soiree::IntoEvent;
use soiree::mutation::{MutationPayload, Mutations};

#[cfg(doc)]
use crate::Error;
use crate::Result;
use crate::triggers::{identifier, quote_ident};

/// The database an outbox insert is written for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// PostgreSQL, with the store's tables in `schema` (`public` by
    /// default): `$1, $2, …` parameters.
    Postgres {
        /// The schema of the store's tables.
        schema: String,
    },
    /// SQLite: `?` parameters.
    Sqlite,
}

/// One statement writing events into the outbox: SQL with positional
/// parameters, their values (text or NULL, in order), and the ids of the
/// events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxInsert {
    /// The `INSERT` statement.
    pub sql: String,
    /// The parameters' values, in order.
    pub values: Vec<Option<String>>,
    /// The events' ids (`soiree.event_id`), in order.
    pub ids: Vec<String>,
}

/// Builds the statement writing `events` (what
/// [`emit_all_in`](crate::SqliteStore::emit_all_in) takes) into the outbox,
/// or `None` when there are none. Run it in the transaction of the change
/// the events describe.
///
/// # Examples
///
/// ```
/// use soiree_sql::outbox::{Dialect, outbox_insert};
///
/// let insert = outbox_insert(&Dialect::Sqlite, [("order.paid", serde_json::json!({ "order": 42 }))])
///     .unwrap()
///     .unwrap();
/// assert!(insert.sql.starts_with("INSERT INTO soiree_events"));
/// assert_eq!(insert.values.len(), 5);
/// assert_eq!(insert.ids.len(), 1);
/// ```
///
/// # Errors
///
/// [`Error::InvalidTopic`] or [`Error::Event`] as for `emit_in`;
/// [`Error::InvalidIdentifier`] for a PostgreSQL schema that is not a plain
/// identifier.
pub fn outbox_insert<T, E>(
    dialect: &Dialect,
    events: impl IntoIterator<Item = (T, E)>,
) -> Result<Option<OutboxInsert>>
where
    T: AsRef<str>,
    E: IntoEvent,
{
    let table = match dialect {
        Dialect::Postgres { schema } => {
            format!("{}.soiree_events", quote_ident(identifier(schema)?))
        }
        Dialect::Sqlite => "soiree_events".to_owned(),
    };
    let mut values = Vec::new();
    let mut ids = Vec::new();
    let mut rows = Vec::new();
    for (topic, event) in events {
        let (row, id) = crate::emit::prepare(topic.as_ref(), event)?;
        let first = values.len();
        let placeholders: Vec<String> = (1..=5)
            .map(|n| match dialect {
                Dialect::Postgres { .. } => match n {
                    3 | 4 => format!("${}::json", first + n),
                    _ => format!("${}", first + n),
                },
                Dialect::Sqlite => "?".to_owned(),
            })
            .collect();
        rows.push(format!("({})", placeholders.join(", ")));
        values.extend([
            Some(row.topic),
            row.event_id,
            Some(row.payload),
            Some(row.properties),
            row.key,
        ]);
        ids.push(id);
    }
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(OutboxInsert {
        sql: format!(
            "INSERT INTO {table} (topic, event_id, payload, properties, key) VALUES {}",
            rows.join(", ")
        ),
        values,
        ids,
    }))
}

/// The statement staging one mutation's events ([`Mutations::events`]),
/// or `None` when nobody wants it.
///
/// # Examples
///
/// ```
/// use soiree::EventBus;
/// use soiree::mutation::{MutationPayload, Mutations, Operation};
/// use soiree_sql::outbox::{Dialect, mutation_insert};
///
/// let mutations = Mutations::new(EventBus::new()).always_stage(true);
/// let payload = MutationPayload::new(Operation::Create, "Invoice", "inv-1");
/// let dialect = Dialect::Postgres { schema: "public".into() };
/// let insert = mutation_insert(&dialect, &mutations, &payload).unwrap().unwrap();
/// assert!(insert.sql.contains("$3::json"));
///
/// // Nobody listens and nothing asks to stage everything: no statement.
/// let quiet = Mutations::new(EventBus::new());
/// assert!(mutation_insert(&dialect, &quiet, &payload).unwrap().is_none());
/// ```
///
/// # Errors
///
/// [`Error::Event`] for an entity type that is not a valid topic, and as
/// [`outbox_insert`].
pub fn mutation_insert(
    dialect: &Dialect,
    mutations: &Mutations,
    payload: &MutationPayload,
) -> Result<Option<OutboxInsert>> {
    let events = crate::mutation::staged_events(mutations, payload)?;
    outbox_insert(dialect, events)
}
