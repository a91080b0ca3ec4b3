//! Database triggers that write mutation events into the outbox: raw SQL,
//! bulk statements and other programs' writes are captured too.
//!
//! [`PostgresStore::install_mutation_triggers`](crate::PostgresStore::install_mutation_triggers)
//! and [`SqliteStore::install_mutation_triggers`](crate::SqliteStore::install_mutation_triggers)
//! install `AFTER INSERT`, `AFTER UPDATE` and `AFTER DELETE` triggers on a
//! table (on SQLite per row; on PostgreSQL inserts and deletes per
//! statement, through transition tables, and updates per row). Each changed
//! row writes one event into the outbox, in the transaction of the
//! statement that changed it (so a rolled-back change
//! leaves no event), on the topic of the entity type
//! ([`soiree::mutation::mutation_topic`]) with a
//! [`MutationPayload`](soiree::mutation::MutationPayload):
//!
//! | field | value |
//! |---|---|
//! | `operation` | `OpCreate`, `OpUpdateOne` or `OpDeleteOne` (one event per row, bulk statements included) |
//! | `entity_type` | the [`MutationTrigger`]'s entity type |
//! | `entity_id` | the id column's value, as text |
//! | `changed_fields` | create: the columns that are not null; update: the columns whose value changed (sorted by name); delete: none |
//! | `before` / `after` | the row before (update, delete) and after (create, update) as a JSON object of its columns; values as below |
//! | a `numeric` column's value (PostgreSQL) | a JSON **string** of the exact decimal text (`"12345678901234567890.123456789"`, `"NaN"`); `numeric[]`: an array of such strings. A JSON number would be rounded to an `f64` when read, or refused beyond its range (`1e400`) |
//! | other values | as PostgreSQL's `to_json` writes them (integers and floats as numbers, `json`/`jsonb` as themselves, `\u0000` in a `json` string included; timestamps as ISO strings); SQLite: integers and reals as numbers, text as strings (NUL included), blobs as hex |
//! | `actor_id` | PostgreSQL: the setting `soiree.actor_id` when set (`SET LOCAL soiree.actor_id = 'user-7'`); SQLite: none |
//!
//! With [`MutationTrigger::detected`], each row also writes a
//! `mutation.detected` event ([`soiree::workflow::MutationDetectedPayload`]).
//! Every row gets an event id (`soiree.event_id`), so named listeners run
//! once per change even when an event is delivered again. Ids start with
//! the time, as the bus's own ULIDs: a UUIDv7 on PostgreSQL (74 random
//! bits), 32 hex digits on SQLite (12 of milliseconds, then 80 random
//! bits). Ids made together sort together, so the log's index on
//! `event_id` grows at its end rather than at a random page per event.
//!
//! Triggers always write: unlike [`record`](crate::PostgresStore::record),
//! they cannot ask the bus whether anyone listens. `TRUNCATE` is not
//! captured. Installing again is harmless, and picks up new columns (which
//! the triggers list at install time, on both databases);
//! `remove_mutation_triggers` drops them.
//!
//! Names are checked before any SQL is built: the table, its schema and the
//! id column must be plain identifiers ([`Error::InvalidIdentifier`]
//! otherwise), the entity type a valid topic ([`Error::InvalidTopic`]).
//!
//! # Limits
//!
//! A trigger never fails the application's write over an event. The
//! payload stays within [`soiree::limits::MAX_PAYLOAD_LEN`]: a `before` or
//! `after` image larger than [`MAX_ROW_IMAGE_LEN`] bytes (as the database
//! measures it: `pg_column_size` of the row's `jsonb` for PostgreSQL
//! updates, the length of its JSON text otherwise) is left out (`null`),
//! and the event gets the property [`PROPERTY_ROW_OMITTED`] (`true`):
//! a listener reads the row itself, by `entity_id`. The event id (a UUID
//! or 32 hex digits) and the topic (the entity type, checked at install)
//! are within their limits. What a trigger cannot check cheaply is left to
//! the consumers: a PostgreSQL row whose `json`/`jsonb` columns nest deeper
//! than `serde_json` reads (about 125 levels inside the payload) or whose
//! `numeric` values are past `f64` (`1e400`) is written, and a consumer
//! that cannot parse it dead-letters it, with its event id, apart from
//! the other events. SQLite rows have neither: their values are text,
//! numbers within `f64` and `i64`, and hex for blobs.

/// The largest `before` or `after` image a trigger puts in a payload, in
/// bytes: two of them and the other fields stay within
/// [`soiree::limits::MAX_PAYLOAD_LEN`].
pub const MAX_ROW_IMAGE_LEN: usize = (soiree::limits::MAX_PAYLOAD_LEN - 256 * 1024) / 2;

/// The property (`true`) of a trigger's event whose row image was left out
/// for its size.
pub const PROPERTY_ROW_OMITTED: &str = "soiree.row_omitted";

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use crate::{Error, Result};

/// What to capture: a table, the entity type its rows are, and its id
/// column.
///
/// # Examples
///
/// ```
/// use soiree_sql::triggers::MutationTrigger;
///
/// let trigger = MutationTrigger::new("organization_settings", "OrganizationSetting")
///     .id_column("setting_id");
/// assert_eq!(trigger.table(), "organization_settings");
/// assert!(MutationTrigger::new("users; DROP TABLE users", "User").validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutationTrigger {
    table: String,
    table_schema: Option<String>,
    entity_type: String,
    id_column: String,
    detected: bool,
}

impl MutationTrigger {
    /// Captures the rows of `table` as mutations of `entity_type`, with the
    /// id in column `id`.
    pub fn new(table: impl Into<String>, entity_type: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            table_schema: None,
            entity_type: entity_type.into(),
            id_column: "id".to_owned(),
            detected: false,
        }
    }

    /// Sets the column holding the entity id (default `id`).
    #[must_use]
    pub fn id_column(mut self, column: impl Into<String>) -> Self {
        self.id_column = column.into();
        self
    }

    /// PostgreSQL: the schema of the table (default: found through the
    /// `search_path`). Ignored on SQLite.
    #[must_use]
    pub fn table_schema(mut self, schema: impl Into<String>) -> Self {
        self.table_schema = Some(schema.into());
        self
    }

    /// Also writes a `mutation.detected` event for every row (default
    /// false), as the workflow topics expect.
    #[must_use]
    pub fn detected(mut self, detected: bool) -> Self {
        self.detected = detected;
        self
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The entity type: the events' topic.
    pub fn entity_type(&self) -> &str {
        &self.entity_type
    }

    /// Checks every name, as installing does first.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidIdentifier`] for a table, schema or id column that is
    /// not a plain identifier, [`Error::InvalidTopic`] for an entity type
    /// that is not a valid topic.
    pub fn validate(&self) -> Result<()> {
        identifier(&self.table)?;
        identifier(&self.id_column)?;
        if let Some(schema) = &self.table_schema {
            identifier(schema)?;
        }
        let topic = crate::topic::validate_topic(&self.entity_type)?;
        if topic != self.entity_type {
            return Err(Error::InvalidTopic {
                topic: self.entity_type.clone(),
                reason: "an entity type must not have surrounding spaces",
            });
        }
        Ok(())
    }
}

/// Checks a name given for a trigger: letters, digits and `_`, not
/// starting with a digit, 1 to 63 bytes (PostgreSQL's limit).
pub(crate) fn identifier(name: &str) -> Result<&str> {
    let invalid = |reason| Error::InvalidIdentifier {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("an identifier must not be empty"));
    }
    if name.len() > 63 {
        return Err(invalid("an identifier must be at most 63 bytes"));
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(invalid("an identifier must not start with a digit"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(invalid(
            "an identifier may only hold ASCII letters, digits and `_`",
        ));
    }
    Ok(name)
}

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a SQL string literal.
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_typed_errors() {
        for bad in [
            "",
            "1abc",
            "users; DROP TABLE users",
            "a\"b",
            "a'b",
            "a b",
            "é",
            "a-b",
            &"x".repeat(64),
        ] {
            for trigger in [
                MutationTrigger::new(bad, "User"),
                MutationTrigger::new("users", "User").id_column(bad),
                MutationTrigger::new("users", "User").table_schema(bad),
            ] {
                assert!(
                    matches!(trigger.validate(), Err(Error::InvalidIdentifier { .. })),
                    "{bad:?}"
                );
            }
        }
        for bad in ["", "a..b", "a.*", " User", "a\0b"] {
            let err = MutationTrigger::new("users", bad).validate().unwrap_err();
            assert!(
                matches!(err, Error::InvalidTopic { .. } | Error::NulCharacter(_)),
                "{bad:?}: {err}"
            );
        }
        MutationTrigger::new("organization_settings", "OrganizationSetting")
            .id_column("_id2")
            .table_schema("app")
            .validate()
            .unwrap();
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
