//! Mutation triggers on SQLite: three row triggers per table, built from
//! the table's columns as they are at install time.

use sqlx::AssertSqlSafe;

use super::{MAX_ROW_IMAGE_LEN, MutationTrigger, PROPERTY_ROW_OMITTED, quote_ident, quote_literal};
use crate::{Error, Result, SqliteStore};

/// SQLite functions take at most 127 arguments by default: `json_object`
/// holds two per column.
const MAX_COLUMNS: usize = 60;

impl SqliteStore {
    /// Installs the mutation triggers of one table (`AFTER INSERT`, `AFTER
    /// UPDATE`, `AFTER DELETE … FOR EACH ROW`, named
    /// `soiree_mutation_<table>_<insert|update|delete>`), writing into this
    /// store's outbox: see [the module](crate::triggers) for the events.
    /// The triggers list the table's columns as they are now: install again
    /// after adding columns (installing again replaces them, harmless).
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree_sql::SqliteStore;
    /// use soiree_sql::triggers::MutationTrigger;
    ///
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("soiree-doc-triggers-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let store = SqliteStore::open(dir.join("app.db")).await?;
    /// sqlx::query("CREATE TABLE settings (id TEXT PRIMARY KEY, plan TEXT)")
    ///     .execute(store.pool())
    ///     .await?;
    /// let trigger = MutationTrigger::new("settings", "OrganizationSetting");
    /// store.install_mutation_triggers(&trigger).await?;
    /// // Any write now stages its event, raw SQL included.
    /// sqlx::query("INSERT INTO settings (id, plan) VALUES ('os-1', 'free')")
    ///     .execute(store.pool())
    ///     .await?;
    /// store.remove_mutation_triggers(&trigger).await?;
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidIdentifier`] or [`Error::InvalidTopic`] for names
    /// that [`MutationTrigger::validate`] refuses, [`Error::InvalidConfig`]
    /// when the table or its id column does not exist or the table has more
    /// than 60 columns, [`Error::Database`] when the statements fail.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: everything happens in one transaction.
    pub async fn install_mutation_triggers(&self, trigger: &MutationTrigger) -> Result<()> {
        trigger.validate()?;
        let mut tx = self.begin().await?;
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?1) ORDER BY name")
                .bind(&trigger.table)
                .fetch_all(&mut *tx)
                .await?;
        if columns.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "table {:?} does not exist",
                trigger.table
            )));
        }
        if !columns.contains(&trigger.id_column) {
            return Err(Error::InvalidConfig(format!(
                "table {:?} has no column {:?}",
                trigger.table, trigger.id_column
            )));
        }
        if columns.len() > MAX_COLUMNS {
            return Err(Error::InvalidConfig(format!(
                "table {:?} has {} columns: mutation triggers support at most {MAX_COLUMNS}",
                trigger.table,
                columns.len()
            )));
        }
        for statement in drop_statements(trigger) {
            sqlx::raw_sql(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        for statement in create_statements(trigger, &columns) {
            sqlx::raw_sql(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Drops the mutation triggers of one table (nothing happens when there
    /// are none).
    ///
    /// # Errors
    ///
    /// As [`install_mutation_triggers`](Self::install_mutation_triggers)
    /// for names, [`Error::Database`] when the statements fail.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: one transaction.
    pub async fn remove_mutation_triggers(&self, trigger: &MutationTrigger) -> Result<()> {
        trigger.validate()?;
        let mut tx = self.begin().await?;
        for statement in drop_statements(trigger) {
            sqlx::raw_sql(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

const KINDS: [&str; 3] = ["insert", "update", "delete"];

fn trigger_name(trigger: &MutationTrigger, kind: &str) -> String {
    quote_ident(&format!("soiree_mutation_{}_{kind}", trigger.table))
}

fn drop_statements(trigger: &MutationTrigger) -> Vec<String> {
    KINDS
        .iter()
        .map(|kind| format!("DROP TRIGGER IF EXISTS {}", trigger_name(trigger, kind)))
        .collect()
}

/// A column's value as JSON can hold it (a BLOB as hex).
fn value(row: &str, column: &str) -> String {
    let col = format!("{row}.{}", quote_ident(column));
    format!("CASE typeof({col}) WHEN 'blob' THEN hex({col}) ELSE {col} END")
}

/// The row as a JSON object.
fn row_json(row: &str, columns: &[String]) -> String {
    let pairs: Vec<String> = columns
        .iter()
        .map(|c| format!("{}, {}", quote_literal(c), value(row, c)))
        .collect();
    format!("json_object({})", pairs.join(", "))
}

/// The names of the columns for which `condition(column)` holds, as the
/// text of a JSON array in column order (string operations only: cheaper
/// per row than building it with JSON functions).
fn names_where(columns: &[String], condition: impl Fn(&str) -> String) -> String {
    let cases: Vec<String> = columns
        .iter()
        .map(|c| {
            let name = serde_json::Value::from(c.as_str()).to_string();
            format!(
                "CASE WHEN {} THEN {} ELSE '' END",
                condition(c),
                quote_literal(&format!("{name},"))
            )
        })
        .collect();
    format!("('[' || rtrim({}, ',') || ']')", cases.join(" || "))
}

fn create_statements(trigger: &MutationTrigger, columns: &[String]) -> Vec<String> {
    let table = quote_ident(&trigger.table);
    let entity = quote_literal(&trigger.entity_type);
    let col = |row: &str, c: &str| format!("{row}.{}", quote_ident(c));
    KINDS
        .iter()
        .map(|kind| {
            let (op, verb, row, changed, fields) = match *kind {
                "insert" => (
                    "OpCreate",
                    "create",
                    "NEW",
                    names_where(columns, |c| format!("{} IS NOT NULL", col("NEW", c))),
                    vec![("after", row_json("NEW", columns))],
                ),
                "update" => (
                    "OpUpdateOne",
                    "update",
                    "NEW",
                    names_where(columns, |c| {
                        format!("{} IS NOT {}", col("OLD", c), col("NEW", c))
                    }),
                    vec![
                        ("before", row_json("OLD", columns)),
                        ("after", row_json("NEW", columns)),
                    ],
                ),
                _ => (
                    "OpDeleteOne",
                    "delete",
                    "OLD",
                    "'[]'".to_owned(),
                    vec![("before", row_json("OLD", columns))],
                ),
            };
            let id = format!(
                "COALESCE(CAST({} AS TEXT), '')",
                col(row, &trigger.id_column)
            );
            // Each row image is made once; one too large for the payload
            // limit is left out (the write goes on), and the event says so.
            let fits = |image: &str| format!("length(CAST(e.{image} AS BLOB)) <= {MAX_ROW_IMAGE_LEN}");
            let images: String = fields
                .iter()
                .map(|(image, json)| format!(", {json} AS {image}"))
                .collect();
            let pairs: Vec<String> = fields
                .iter()
                .map(|(image, _)| format!("'{image}', CASE WHEN {} THEN json(e.{image}) END", fits(image)))
                .collect();
            let all_fit: Vec<String> = fields.iter().map(|(image, _)| fits(image)).collect();
            let mut body = format!(
                "INSERT INTO soiree_events (topic, event_id, payload, properties) \
                 SELECT {entity}, e.id, json_object('operation', '{op}', 'entity_type', {entity}, \
                 'entity_id', {id}, 'changed_fields', json(e.changed), {pairs}), \
                 CASE WHEN {all_fit} THEN json_object('soiree.event_id', e.id) \
                 ELSE json_object('soiree.event_id', e.id, '{PROPERTY_ROW_OMITTED}', json('true')) END \
                 FROM (SELECT lower(hex(randomblob(16))) AS id, {changed} AS changed{images}) AS e;",
                pairs = pairs.join(", "),
                all_fit = all_fit.join(" AND "),
            );
            if trigger.detected {
                body.push_str(&format!(
                    " INSERT INTO soiree_events (topic, event_id, payload, properties) \
                     SELECT 'mutation.detected', e.id, json_object('SchemaType', {entity}, \
                     'ObjectID', {id}, 'Operation', '{verb}', 'ChangedFields', json(e.changed), \
                     'UserID', ''), json_object('soiree.event_id', e.id) \
                     FROM (SELECT lower(hex(randomblob(16))) AS id, {changed} AS changed) AS e;"
                ));
            }
            format!(
                "CREATE TRIGGER {} AFTER {} ON {table} FOR EACH ROW BEGIN {body} END",
                trigger_name(trigger, kind),
                kind.to_uppercase(),
            )
        })
        .collect()
}
