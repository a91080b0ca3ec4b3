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
        let columns: Vec<Column> = sqlx::query_as::<_, (String, bool)>(
            "SELECT name, \"notnull\" <> 0 FROM pragma_table_info(?1) ORDER BY name",
        )
        .bind(&trigger.table)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(name, not_null)| Column { name, not_null })
        .collect();
        if columns.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "table {:?} does not exist",
                trigger.table
            )));
        }
        if !columns.iter().any(|c| c.name == trigger.id_column) {
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

/// A column of a captured table, as its triggers list it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    /// Declared `NOT NULL`: never null in a written row, so an insert's
    /// changed fields need no test for it. (SQLite cannot drop the
    /// constraint but by rebuilding the table, which drops its triggers.)
    not_null: bool,
}

/// A new event id: 32 hex digits, the time in milliseconds (12) then 80
/// random bits (20), as a ULID is made. Ids made together sort together, so
/// the log's index on `event_id` takes them on its last pages; random ids
/// landed on a page at random each, and every transaction wrote about one
/// index page per event to the WAL, most of what a trigger cost.
/// `julianday('now')` is read once per statement, and is known to the
/// oldest SQLite that may write to the table (another program's).
const NEW_EVENT_ID: &str = "printf('%012x', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) \
     || lower(hex(randomblob(10)))";

/// `text` as a JSON string, as an SQL literal.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A column's value as JSON can hold it (a BLOB as hex).
fn value(row: &str, column: &str) -> String {
    let col = format!("{row}.{}", quote_ident(column));
    format!("CASE typeof({col}) WHEN 'blob' THEN hex({col}) ELSE {col} END")
}

/// The row as a JSON object.
fn row_json(row: &str, columns: &[Column]) -> String {
    let pairs: Vec<String> = columns
        .iter()
        .map(|c| format!("{}, {}", quote_literal(&c.name), value(row, &c.name)))
        .collect();
    format!("json_object({})", pairs.join(", "))
}

/// The names of the columns for which `condition(column)` holds (`None`:
/// always), as the text of a JSON array in column order: string operations
/// only, cheaper per row than JSON functions, and a constant when every
/// column is in.
fn names_where(columns: &[Column], condition: impl Fn(&Column) -> Option<String>) -> String {
    let mut pieces = Vec::new();
    let mut constant = String::new();
    let mut tested = false;
    for column in columns {
        let name = format!("{},", json_string(&column.name));
        match condition(column) {
            None => constant.push_str(&name),
            Some(test) => {
                tested = true;
                if !constant.is_empty() {
                    pieces.push(quote_literal(&std::mem::take(&mut constant)));
                }
                pieces.push(format!(
                    "CASE WHEN {test} THEN {} ELSE '' END",
                    quote_literal(&name)
                ));
            }
        }
    }
    if !tested {
        return quote_literal(&format!("[{}]", constant.trim_end_matches(',')));
    }
    if !constant.is_empty() {
        pieces.push(quote_literal(&constant));
    }
    format!("('[' || rtrim({}, ',') || ']')", pieces.join(" || "))
}

/// An SQL expression of text: `parts` concatenated, each either constant
/// text (`Ok`) or an expression (`Err`).
fn concat(parts: &[std::result::Result<String, String>]) -> String {
    parts
        .iter()
        .map(|part| match part {
            Ok(text) => quote_literal(text),
            Err(expression) => expression.clone(),
        })
        .collect::<Vec<_>>()
        .join(" || ")
}

fn create_statements(trigger: &MutationTrigger, columns: &[Column]) -> Vec<String> {
    let table = quote_ident(&trigger.table);
    let entity = quote_literal(&trigger.entity_type);
    let entity_json = json_string(&trigger.entity_type);
    let col = |row: &str, c: &str| format!("{row}.{}", quote_ident(c));
    KINDS
        .iter()
        .map(|kind| {
            let (op, verb, row, changed, fields) = match *kind {
                "insert" => (
                    "OpCreate",
                    "create",
                    "NEW",
                    names_where(columns, |c| {
                        (!c.not_null).then(|| format!("{} IS NOT NULL", col("NEW", &c.name)))
                    }),
                    vec![("after", row_json("NEW", columns))],
                ),
                "update" => (
                    "OpUpdateOne",
                    "update",
                    "NEW",
                    names_where(columns, |c| {
                        Some(format!(
                            "{} IS NOT {}",
                            col("OLD", &c.name),
                            col("NEW", &c.name)
                        ))
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
                "json_quote(COALESCE(CAST({} AS TEXT), ''))",
                col(row, &trigger.id_column)
            );
            // Each row image is made once; one too large for the payload
            // limit is left out (the write goes on), and the event says so.
            let fits =
                |image: &str| format!("length(CAST(e.{image} AS BLOB)) <= {MAX_ROW_IMAGE_LEN}");
            let images: String = fields
                .iter()
                .map(|(image, json)| format!(", {json} AS {image}"))
                .collect();
            // The payloads and properties are written as text, as
            // `json_object` writes them: the parts made as JSON (row
            // images, changed fields) are not parsed again to be embedded.
            let mut payload = vec![
                Ok(format!(
                    "{{\"operation\":\"{op}\",\"entity_type\":{entity_json},\"entity_id\":"
                )),
                Err(id.clone()),
                Ok(",\"changed_fields\":".to_owned()),
                Err("e.changed".to_owned()),
            ];
            for (image, _) in &fields {
                payload.push(Ok(format!(",\"{image}\":")));
                payload.push(Err(format!(
                    "CASE WHEN {} THEN e.{image} ELSE 'null' END",
                    fits(image)
                )));
            }
            payload.push(Ok("}".to_owned()));
            let all_fit: Vec<String> = fields.iter().map(|(image, _)| fits(image)).collect();
            let properties = |extra: &str| {
                concat(&[
                    Ok(format!("{{{}:\"", json_string(soiree::PROPERTY_EVENT_ID))),
                    Err("e.id".to_owned()),
                    Ok(format!("\"{extra}}}")),
                ])
            };
            let mut body = format!(
                "INSERT INTO soiree_events (topic, event_id, payload, properties) \
                 SELECT {entity}, e.id, {payload}, \
                 CASE WHEN {all_fit} THEN {fitting} ELSE {omitted} END \
                 FROM (SELECT {NEW_EVENT_ID} AS id, {changed} AS changed{images}) AS e;",
                payload = concat(&payload),
                all_fit = all_fit.join(" AND "),
                fitting = properties(""),
                omitted = properties(&format!(",{}:true", json_string(PROPERTY_ROW_OMITTED))),
            );
            if trigger.detected {
                let detected = concat(&[
                    Ok(format!("{{\"SchemaType\":{entity_json},\"ObjectID\":")),
                    Err(id.clone()),
                    Ok(format!(",\"Operation\":\"{verb}\",\"ChangedFields\":")),
                    Err("e.changed".to_owned()),
                    Ok(",\"UserID\":\"\"}".to_owned()),
                ]);
                body.push_str(&format!(
                    " INSERT INTO soiree_events (topic, event_id, payload, properties) \
                     SELECT 'mutation.detected', e.id, {detected}, {properties} \
                     FROM (SELECT {NEW_EVENT_ID} AS id, {changed} AS changed) AS e;",
                    properties = properties(""),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_test_only_nullable_columns_and_parse_no_json_again() {
        let columns = [
            Column {
                name: "id".into(),
                not_null: true,
            },
            Column {
                name: "note".into(),
                not_null: false,
            },
        ];
        let trigger = MutationTrigger::new("accounts", "Account").detected(true);
        let statements = create_statements(&trigger, &columns);
        let insert = &statements[0];
        assert!(insert.contains("NEW.\"note\" IS NOT NULL"), "{insert}");
        assert!(!insert.contains("NEW.\"id\" IS NOT NULL"), "{insert}");
        for sql in &statements {
            assert!(!sql.contains("json(e."), "embedded as text: {sql}");
            assert!(sql.contains("randomblob(10)"), "{sql}");
            if std::env::var_os("SOIREE_PRINT_TRIGGER_SQL").is_some() {
                println!("{sql};");
            }
        }
        let all_not_null = [Column {
            name: "id".into(),
            not_null: true,
        }];
        assert_eq!(names_where(&all_not_null, |_| None), "'[\"id\"]'");
    }
}
