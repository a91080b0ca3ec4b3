//! Mutation triggers on PostgreSQL: two plpgsql functions per table in the
//! store's schema, listing its columns as they are at install time (one for
//! inserts and deletes, captured per statement through transition tables:
//! one set-based `INSERT` into the outbox for all the statement's rows; one
//! for updates, per row, so that a row whose id changes is still paired
//! with its old self), and three triggers per table passing them the
//! entity type and id column.
//!
//! The functions never evaluate the JSON of a row: a `json` column may hold
//! `\u0000`, which PostgreSQL keeps in `json` but cannot convert to text, and
//! a trigger that failed on it would fail the application's own statement.

use sqlx::AssertSqlSafe;

use super::{MAX_ROW_IMAGE_LEN, MutationTrigger, PROPERTY_ROW_OMITTED, quote_ident, quote_literal};
use crate::{Error, PostgresStore, Result};

/// The triggers' names on every captured table.
const TRIGGERS: [&str; 3] = [
    "soiree_mutation_insert",
    "soiree_mutation_update",
    "soiree_mutation_delete",
];

/// A column of a captured table, as its functions list it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    kind: ColumnKind,
}

/// How a column's values go into a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnKind {
    /// As `to_json` writes them.
    Plain,
    /// `smallint`, `integer`, `bigint` (or a domain over one): their text
    /// is what `to_json` writes, without its per-value type lookups.
    Integer,
    /// `text`, `varchar`, `uuid`: as `to_json` writes them, and their text
    /// is their JSON string's value (an id needs no JSON round trip).
    Text,
    /// `numeric` (or a domain over it): as a JSON string of the exact
    /// decimal text; a JSON number would be rounded to an `f64` (or refused
    /// beyond its range) when the payload is read.
    Numeric,
    /// `numeric[]`: as an array of such strings.
    NumericArray,
}

/// `text` as an SQL string literal, whatever `standard_conforming_strings`
/// says (a JSON-escaped name may hold a backslash).
fn sql_text(text: &str) -> String {
    if text.contains('\\') {
        format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        quote_literal(text)
    }
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// Column `column` of row `row` as JSON text, as `to_json` of the row
/// writes it (`null` included).
fn json_value(row: &str, column: &Column) -> String {
    let value = format!("{row}.{}", quote_ident(&column.name));
    match column.kind {
        ColumnKind::Integer => format!("coalesce({value}::text, 'null')"),
        // Digits, `-`, `.`, `e`, `NaN`, `Infinity`: nothing to escape.
        ColumnKind::Numeric => format!("coalesce('\"' || {value}::text || '\"', 'null')"),
        ColumnKind::NumericArray => format!("coalesce(to_json({value}::text[])::text, 'null')"),
        ColumnKind::Plain | ColumnKind::Text => format!("coalesce(to_json({value})::text, 'null')"),
    }
}

/// Row `row` as the text of a JSON object of its columns, the text
/// `to_json` of the row would write (`{"a":1,"b":"x"}`), made by
/// concatenation: `to_json` and `json_build_object` look each value's
/// type up again for every row. Never evaluated as JSON: a `json` column
/// may hold `\u0000`, which PostgreSQL keeps in `json` but cannot convert
/// to text (`->>`, `json_each`, `to_jsonb` fail on it, and with them the
/// application's own statement).
fn row_json(row: &str, columns: &[Column]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(n, c)| {
            let key = format!(
                "{}{}:",
                if n == 0 { "{" } else { "," },
                json_string(&c.name)
            );
            format!("{} || {}", sql_text(&key), json_value(row, c))
        })
        .collect();
    format!("({} || '}}')", parts.join(" || "))
}

/// The id column of row `row` as text (as its JSON form reads: a timestamp
/// in ISO form), `''` when null.
fn row_id(row: &str, id: &Column) -> String {
    let value = format!("{row}.{}", quote_ident(&id.name));
    match id.kind {
        ColumnKind::Integer | ColumnKind::Text | ColumnKind::Numeric => {
            format!("coalesce({value}::text, '')")
        }
        ColumnKind::NumericArray => format!("coalesce(to_json({value}::text[]) #>> '{{}}', '')"),
        ColumnKind::Plain => format!("coalesce(to_json({value}) #>> '{{}}', '')"),
    }
}

/// The JSON string of a [`row_id`] (`id`): integers need no escaping.
fn row_id_json(id: &str, column: &Column) -> String {
    match column.kind {
        ColumnKind::Integer => format!("'\"' || {id} || '\"'"),
        _ => format!("to_json({id})::text"),
    }
}

/// The text of a JSON array of the names of `columns` for which `condition`
/// holds, in column order (`["a","b"]`, as `array_to_json` writes it),
/// made with string operations only.
fn names_where(columns: &[Column], condition: impl Fn(&str) -> String) -> String {
    let cases: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "CASE WHEN {} THEN {} ELSE '' END",
                condition(&quote_ident(&c.name)),
                sql_text(&format!("{},", json_string(&c.name)))
            )
        })
        .collect();
    format!("('[' || rtrim({}, ',') || ']')", cases.join(" || "))
}

/// The start of a new event id, once per call: a UUIDv7's time in
/// milliseconds and version (`0190f1a2-3b4c-7`), followed per event by the
/// last 21 characters of a random UUID (74 random bits, the variant kept):
/// ids made together sort together, so the log's index on `event_id`
/// grows at its end instead of at a random page per event.
const EVENT_ID_PREFIX: &str = "(SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' \
     FROM (SELECT lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') \
     AS h) AS soiree_ms)";

/// A new event id, given the [`EVENT_ID_PREFIX`] in `prefix`.
fn new_event_id(prefix: &str) -> String {
    format!("{prefix} || substr(gen_random_uuid()::text, 16)")
}

/// The properties of an event with id `id` (SQL text), as
/// `json_build_object` writes them, `omitted` (SQL boolean) saying whether
/// a row image was left out.
fn properties(id: &str, omitted: &str) -> String {
    format!(
        "({start} || {id} || CASE WHEN {omitted} THEN {omitted_end} ELSE '\"}}' END)::json",
        start = sql_text(&format!(
            "{{{} : \"",
            json_string(soiree::PROPERTY_EVENT_ID)
        )),
        omitted_end = sql_text(&format!(
            "\", {} : true}}",
            json_string(PROPERTY_ROW_OMITTED)
        )),
    )
}

/// A table's statement function: inserts and deletes, through transition
/// tables, with the table's columns listed (install again after adding
/// columns). Payloads and properties are written as text, the text
/// `json_build_object` wrote, and cast to `json` once.
fn statement_function(schema: &str, name: &str, columns: &[Column], id: &Column) -> String {
    let rows = |table: &str, fields: &str| {
        format!(
            "SELECT {j} AS j, {row_id} AS row_id, {fields} AS fields, \
             {event_id} AS event_id FROM {table} AS t",
            j = row_json("t", columns),
            row_id = row_id("t", id),
            event_id = new_event_id("id_prefix"),
        )
    };
    let inserted = rows(
        "soiree_new_rows",
        &names_where(columns, |c| format!("t.{c} IS NOT NULL")),
    );
    let deleted = rows("soiree_old_rows", "'[]'");
    // A row image too large for the payload limit is left out (the write
    // goes on), and the event says so.
    let fits = format!("octet_length(c.j) <= {MAX_ROW_IMAGE_LEN}");
    let id_json = row_id_json("c.row_id", id);
    // The mutation events of rows `c`.
    let events = |op: &str, row_key: &str| {
        format!(
            "INSERT INTO {schema}.soiree_events (topic, event_id, payload, properties) \
             SELECT TG_ARGV[0], c.event_id, \
             ('{{\"operation\" : \"{op}\", \"entity_type\" : ' || entity || \
              ', \"entity_id\" : ' || {id_json} || ', \"changed_fields\" : ' || c.fields || \
              ', \"{row_key}\" : ' || CASE WHEN {fits} THEN c.j ELSE 'null' END || \
              actor_field || '}}')::json, \
             {properties} \
             FROM c",
            properties = properties("c.event_id", &format!("NOT ({fits})")),
        )
    };
    // Their `mutation.detected` events.
    let detected = |verb: &str| {
        format!(
            "INSERT INTO {schema}.soiree_events (topic, event_id, payload, properties) \
             SELECT 'mutation.detected', d.id, \
             ('{{\"SchemaType\" : ' || entity || ', \"ObjectID\" : ' || {id_json} || \
              ', \"Operation\" : \"{verb}\", \"ChangedFields\" : ' || c.fields || \
              ', \"UserID\" : ' || user_id || '}}')::json, \
             {properties} \
             FROM c CROSS JOIN LATERAL (SELECT {event_id} AS id) AS d",
            event_id = new_event_id("id_prefix"),
            properties = properties("d.id", "false"),
        )
    };
    let branch = |rows: &str, op: &str, row_key: &str, verb: &str| {
        format!(
            "IF TG_ARGV[2] = 'true' THEN \
                 WITH c AS MATERIALIZED ({rows}), detected AS ({detected}) {events}; \
             ELSE \
                 WITH c AS ({rows}) {events}; \
             END IF;",
            detected = detected(verb),
            events = events(op, row_key),
        )
    };
    format!(
        "CREATE OR REPLACE FUNCTION {schema}.{name}() RETURNS trigger \
         LANGUAGE plpgsql AS $soiree$ \
         DECLARE \
             actor text := nullif(current_setting('soiree.actor_id', true), ''); \
             entity text := to_json(TG_ARGV[0])::text; \
             actor_field text := CASE WHEN actor IS NULL THEN '' \
                 ELSE ', \"actor_id\" : ' || to_json(actor)::text END; \
             user_id text := to_json(coalesce(actor, ''))::text; \
             id_prefix text := {EVENT_ID_PREFIX}; \
         BEGIN \
         IF TG_OP = 'INSERT' THEN {insert} ELSE {delete} END IF; \
         RETURN NULL; \
         END $soiree$",
        insert = branch(&inserted, "OpCreate", "after", "create"),
        delete = branch(&deleted, "OpDeleteOne", "before", "delete"),
    )
}

/// A table's row function for updates, with the table's columns listed:
/// the changed fields are the columns whose text differs (`json` has no
/// equality), the rows are built as [`row_json`] says, the payload as
/// [`statement_function`]'s.
fn update_function(schema: &str, name: &str, columns: &[Column], id: &Column) -> String {
    let changed = names_where(columns, |c| {
        format!("OLD.{c}::text IS DISTINCT FROM NEW.{c}::text")
    });
    let (before, after) = (row_json("OLD", columns), row_json("NEW", columns));
    let row_id = row_id("NEW", id);
    let id_json = row_id_json("row_id", id);
    format!(
        "CREATE OR REPLACE FUNCTION {schema}.{name}() RETURNS trigger \
         LANGUAGE plpgsql AS $soiree$ \
         DECLARE \
             actor text := nullif(current_setting('soiree.actor_id', true), ''); \
             event_id text := {event_id}; \
             row_id text; \
             changed text; \
             before_row text; \
             after_row text; \
             omitted boolean := false; \
         BEGIN \
             row_id := {row_id}; \
             changed := {changed}; \
             before_row := {before}; \
             after_row := {after}; \
             IF octet_length(before_row) > {MAX_ROW_IMAGE_LEN} THEN \
                 before_row := 'null'; \
                 omitted := true; \
             END IF; \
             IF octet_length(after_row) > {MAX_ROW_IMAGE_LEN} THEN \
                 after_row := 'null'; \
                 omitted := true; \
             END IF; \
             INSERT INTO {schema}.soiree_events (topic, event_id, payload, properties) \
             VALUES (TG_ARGV[0], event_id, \
                 ('{{\"operation\" : \"OpUpdateOne\", \"entity_type\" : ' || to_json(TG_ARGV[0])::text || \
                  ', \"entity_id\" : ' || {id_json} || ', \"changed_fields\" : ' || changed || \
                  ', \"before\" : ' || before_row || ', \"after\" : ' || after_row || \
                  CASE WHEN actor IS NULL THEN '' \
                      ELSE ', \"actor_id\" : ' || to_json(actor)::text END || '}}')::json, \
                 {properties}); \
             IF TG_ARGV[2] = 'true' THEN \
                 event_id := {event_id}; \
                 INSERT INTO {schema}.soiree_events (topic, event_id, payload, properties) \
                 VALUES ('mutation.detected', event_id, \
                     ('{{\"SchemaType\" : ' || to_json(TG_ARGV[0])::text || \
                      ', \"ObjectID\" : ' || {id_json} || \
                      ', \"Operation\" : \"update\", \"ChangedFields\" : ' || changed || \
                      ', \"UserID\" : ' || to_json(coalesce(actor, ''))::text || '}}')::json, \
                     {detected_properties}); \
             END IF; \
             RETURN NULL; \
         END $soiree$",
        event_id = new_event_id(EVENT_ID_PREFIX),
        properties = properties("event_id", "omitted"),
        detected_properties = properties("event_id", "false"),
    )
}

impl PostgresStore {
    /// Installs the mutation triggers of one table (`soiree_mutation_insert`
    /// and `soiree_mutation_delete` per statement, through transition
    /// tables; `soiree_mutation_update` per row), writing into this store's
    /// outbox: see [the module](crate::triggers) for the
    /// events. Installing again replaces them (harmless).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use soiree_sql::triggers::MutationTrigger;
    ///
    /// # #[allow(dead_code)]
    /// # async fn demo(store: soiree_sql::PostgresStore) -> soiree_sql::Result<()> {
    /// store
    ///     .install_mutation_triggers(&MutationTrigger::new("organization_settings", "OrganizationSetting"))
    ///     .await?;
    /// // Any write now stages its events, raw SQL and bulk statements included:
    /// sqlx::query("UPDATE organization_settings SET plan = 'pro'").execute(store.pool()).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidIdentifier`] or [`Error::InvalidTopic`] for names
    /// that [`MutationTrigger::validate`] refuses, [`Error::InvalidConfig`]
    /// when the table or its id column does not exist, [`Error::Database`]
    /// when the statements fail.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: everything happens in one transaction.
    pub async fn install_mutation_triggers(&self, trigger: &MutationTrigger) -> Result<()> {
        trigger.validate()?;
        let table = qualified(trigger);
        let schema = quote_ident(self.schema());
        let mut tx = self.pool().begin().await?;
        // Concurrent `CREATE OR REPLACE` of one function would conflict.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('soiree_mutation_triggers'))")
            .execute(&mut *tx)
            .await?;
        let oid: Option<i64> = sqlx::query_scalar("SELECT to_regclass($1)::oid::bigint")
            .bind(&table)
            .fetch_one(&mut *tx)
            .await?;
        let Some(oid) = oid else {
            return Err(Error::InvalidConfig(format!(
                "table {table} does not exist"
            )));
        };
        let columns: Vec<Column> = sqlx::query_as::<_, (String, i32)>(
            "SELECT a.attname::text, \
               CASE coalesce(nullif(t.typbasetype, 0), t.oid) \
                 WHEN 'numeric'::regtype THEN 1 WHEN 'numeric[]'::regtype THEN 2 \
                 WHEN 'int2'::regtype THEN 3 WHEN 'int4'::regtype THEN 3 \
                 WHEN 'int8'::regtype THEN 3 WHEN 'text'::regtype THEN 4 \
                 WHEN 'varchar'::regtype THEN 4 WHEN 'uuid'::regtype THEN 4 ELSE 0 END \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1::bigint::oid AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attname COLLATE \"C\"",
        )
        .bind(oid)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(name, kind)| Column {
            name,
            kind: match kind {
                1 => ColumnKind::Numeric,
                2 => ColumnKind::NumericArray,
                3 => ColumnKind::Integer,
                4 => ColumnKind::Text,
                _ => ColumnKind::Plain,
            },
        })
        .collect();
        let Some(id) = columns.iter().find(|c| c.name == trigger.id_column) else {
            return Err(Error::InvalidConfig(format!(
                "table {table} has no column {:?}",
                trigger.id_column
            )));
        };
        let (own, own_updates) = (own_function(oid), own_update_function(oid));
        for function in [
            statement_function(&schema, &own, &columns, id),
            update_function(&schema, &own_updates, &columns, id),
        ] {
            sqlx::raw_sql(AssertSqlSafe(function))
                .execute(&mut *tx)
                .await?;
        }
        let args = format!(
            "{}, {}, {}",
            quote_literal(&trigger.entity_type),
            quote_literal(&trigger.id_column),
            quote_literal(if trigger.detected { "true" } else { "false" }),
        );
        let [insert, update, delete] = TRIGGERS;
        for create in [
            format!(
                "CREATE OR REPLACE TRIGGER {insert} AFTER INSERT ON {table} \
                 REFERENCING NEW TABLE AS soiree_new_rows FOR EACH STATEMENT \
                 EXECUTE FUNCTION {schema}.{own}({args})"
            ),
            format!(
                "CREATE OR REPLACE TRIGGER {update} AFTER UPDATE ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION {schema}.{own_updates}({args})"
            ),
            format!(
                "CREATE OR REPLACE TRIGGER {delete} AFTER DELETE ON {table} \
                 REFERENCING OLD TABLE AS soiree_old_rows FOR EACH STATEMENT \
                 EXECUTE FUNCTION {schema}.{own}({args})"
            ),
        ] {
            sqlx::raw_sql(AssertSqlSafe(create))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Drops the mutation triggers of one table (nothing happens when there
    /// are none, or no such table).
    ///
    /// # Errors
    ///
    /// As [`install_mutation_triggers`](Self::install_mutation_triggers)
    /// for names, [`Error::Database`] when the statement fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the triggers and the table's function are dropped in
    /// one implicit transaction.
    pub async fn remove_mutation_triggers(&self, trigger: &MutationTrigger) -> Result<()> {
        trigger.validate()?;
        let table = qualified(trigger);
        let oid: Option<i64> = sqlx::query_scalar("SELECT to_regclass($1)::oid::bigint")
            .bind(&table)
            .fetch_one(self.pool())
            .await?;
        if let Some(oid) = oid {
            let mut drops: Vec<String> = TRIGGERS
                .iter()
                .map(|name| format!("DROP TRIGGER IF EXISTS {name} ON {table};"))
                .collect();
            for function in [own_function(oid), own_update_function(oid)] {
                drops.push(format!(
                    "DROP FUNCTION IF EXISTS {}.{function}();",
                    quote_ident(self.schema()),
                ));
            }
            sqlx::raw_sql(AssertSqlSafe(drops.join(" ")))
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }
}

/// The name of a table's statement function (inserts and deletes): by the
/// table's oid, short and unique whatever the table's name and schema.
fn own_function(oid: i64) -> String {
    format!("soiree_capture_inserts_{oid}")
}

/// The name of a table's update function, as [`own_function`].
fn own_update_function(oid: i64) -> String {
    format!("soiree_capture_updates_{oid}")
}

/// The table's name, quoted, with its schema when one is given.
fn qualified(trigger: &MutationTrigger) -> String {
    match &trigger.table_schema {
        Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(&trigger.table)),
        None => quote_ident(&trigger.table),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_functions_name_the_quoted_schema_only() {
        let columns = [
            Column {
                name: "id".into(),
                kind: ColumnKind::Plain,
            },
            Column {
                name: "total".into(),
                kind: ColumnKind::Numeric,
            },
        ];
        for sql in [
            statement_function("\"ev\"", "soiree_capture_inserts_1", &columns, &columns[0]),
            update_function("\"ev\"", "soiree_capture_updates_1", &columns, &columns[0]),
        ] {
            assert!(sql.contains("INSERT INTO \"ev\".soiree_events"));
            assert!(sql.contains(".\"total\"::text || '\"'"), "{sql}");
            assert!(!sql.contains("{schema}"));
            assert!(!sql.contains("->>"), "no JSON is evaluated: {sql}");
            if std::env::var_os("SOIREE_PRINT_TRIGGER_SQL").is_some() {
                println!("{sql};");
            }
        }
    }
}
