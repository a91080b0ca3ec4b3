//! Mutation triggers on PostgreSQL: plpgsql functions in the store's
//! schema (two shared, and one insert function per table listing its
//! columns), and three triggers per table passing them the entity type and
//! id column. Inserts and deletes are captured per statement
//! through transition tables (one set-based `INSERT` into the outbox for
//! all the statement's rows); updates per row, so that a row whose id
//! changes is still paired with its old self.

use sqlx::AssertSqlSafe;

use super::{MAX_ROW_IMAGE_LEN, MutationTrigger, PROPERTY_ROW_OMITTED, quote_ident, quote_literal};
use crate::{Error, PostgresStore, Result};

/// The triggers' names on every captured table.
const TRIGGERS: [&str; 3] = [
    "soiree_mutation_insert",
    "soiree_mutation_update",
    "soiree_mutation_delete",
];

/// The function writing the events, in the store's schema `{schema}`
/// (quoted). Arguments: entity type, id column, `true` for
/// `mutation.detected` too.
const FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION {schema}.soiree_capture_mutation() RETURNS trigger
LANGUAGE plpgsql AS $soiree$
DECLARE
    old_row jsonb;
    new_row jsonb;
    op text;
    verb text;
    changed jsonb;
    row_id text;
    actor text := nullif(current_setting('soiree.actor_id', true), '');
    event_id text := gen_random_uuid()::text;
    payload jsonb;
    properties json;
BEGIN
    IF TG_OP = 'INSERT' THEN
        new_row := to_jsonb(NEW);
        op := 'OpCreate';
        verb := 'create';
        SELECT coalesce(jsonb_agg(n.key ORDER BY n.key COLLATE "C"), '[]'::jsonb) INTO changed
        FROM jsonb_each(new_row) AS n WHERE n.value <> 'null'::jsonb;
    ELSIF TG_OP = 'UPDATE' THEN
        old_row := to_jsonb(OLD);
        new_row := to_jsonb(NEW);
        op := 'OpUpdateOne';
        verb := 'update';
        SELECT coalesce(jsonb_agg(n.key ORDER BY n.key COLLATE "C"), '[]'::jsonb) INTO changed
        FROM jsonb_each(new_row) AS n WHERE n.value IS DISTINCT FROM old_row -> n.key;
    ELSE
        old_row := to_jsonb(OLD);
        op := 'OpDeleteOne';
        verb := 'delete';
        changed := '[]'::jsonb;
    END IF;
    row_id := coalesce(coalesce(new_row, old_row) ->> TG_ARGV[1], '');
    properties := json_build_object('soiree.event_id', event_id);
    -- A row image too large for the payload limit is left out (the write
    -- goes on); the event says so.
    IF pg_column_size(old_row) > {row_limit} THEN
        old_row := NULL;
        properties := json_build_object('soiree.event_id', event_id, '{omitted}', true);
    END IF;
    IF pg_column_size(new_row) > {row_limit} THEN
        new_row := NULL;
        properties := json_build_object('soiree.event_id', event_id, '{omitted}', true);
    END IF;
    payload := jsonb_build_object(
        'operation', op,
        'entity_type', TG_ARGV[0],
        'entity_id', row_id,
        'changed_fields', changed);
    IF old_row IS NOT NULL THEN
        payload := payload || jsonb_build_object('before', old_row);
    END IF;
    IF new_row IS NOT NULL THEN
        payload := payload || jsonb_build_object('after', new_row);
    END IF;
    IF actor IS NOT NULL THEN
        payload := payload || jsonb_build_object('actor_id', actor);
    END IF;
    INSERT INTO {schema}.soiree_events (topic, event_id, payload, properties)
    VALUES (TG_ARGV[0], event_id, payload::json, properties);
    IF TG_ARGV[2] = 'true' THEN
        event_id := gen_random_uuid()::text;
        INSERT INTO {schema}.soiree_events (topic, event_id, payload, properties)
        VALUES ('mutation.detected', event_id,
            json_build_object(
                'SchemaType', TG_ARGV[0],
                'ObjectID', row_id,
                'Operation', verb,
                'ChangedFields', changed,
                'UserID', coalesce(actor, '')),
            json_build_object('soiree.event_id', event_id));
    END IF;
    RETURN NULL;
END
$soiree$
"#;

/// The function writing the events of a whole `INSERT` or `DELETE`
/// statement from its transition table, in the store's schema `schema`
/// (quoted); same arguments. Built with `json` (not `jsonb`) functions: the
/// outbox's columns are `json`, and nothing is re-parsed.
///
/// With `columns` (the table's, as installed) the function is the table's
/// own (`name`): its changed fields of a created row come from the columns
/// directly, which is cheaper than walking each row's JSON.
fn rows_function(schema: &str, name: &str, columns: Option<&[String]>) -> String {
    // The rows of the transition table with their ids and changed fields.
    let rows = |table: &str, fields: &str| {
        format!(
            "SELECT r.j, coalesce(r.j ->> TG_ARGV[1], '') AS row_id, {fields} AS fields, \
             gen_random_uuid()::text AS event_id \
             FROM (SELECT to_json(t) AS j FROM {table} AS t) AS r"
        )
    };
    let inserted = match columns {
        Some(columns) => {
            let names: Vec<String> = columns
                .iter()
                .map(|c| {
                    format!(
                        "CASE WHEN t.{} IS NOT NULL THEN {} END",
                        quote_ident(c),
                        quote_literal(c)
                    )
                })
                .collect();
            format!(
                "SELECT r.j, coalesce(r.j ->> TG_ARGV[1], '') AS row_id, \
                 array_to_json(array_remove(ARRAY[{}]::text[], NULL)) AS fields, \
                 gen_random_uuid()::text AS event_id \
                 FROM soiree_new_rows AS t CROSS JOIN LATERAL (SELECT to_json(t) AS j) AS r",
                names.join(", ")
            )
        }
        None => rows(
            "soiree_new_rows",
            "(SELECT coalesce(json_agg(n.key ORDER BY n.key COLLATE \"C\"), '[]'::json) \
             FROM json_each(r.j) AS n WHERE json_typeof(n.value) <> 'null')",
        ),
    };
    let deleted = rows("soiree_old_rows", "'[]'::json");
    // The mutation events of rows `c`.
    // A row image too large for the payload limit is left out (the write
    // goes on), and the event says so.
    let row_limit = MAX_ROW_IMAGE_LEN;
    let fits = format!("octet_length(c.j::text) <= {row_limit}");
    let events = |op: &str, row_key: &str| {
        format!(
            "INSERT INTO {schema}.soiree_events (topic, event_id, payload, properties) \
             SELECT TG_ARGV[0], c.event_id, CASE WHEN actor IS NULL \
             THEN json_build_object('operation', '{op}', 'entity_type', TG_ARGV[0], \
                 'entity_id', c.row_id, 'changed_fields', c.fields, \
                 '{row_key}', CASE WHEN {fits} THEN c.j END) \
             ELSE json_build_object('operation', '{op}', 'entity_type', TG_ARGV[0], \
                 'entity_id', c.row_id, 'changed_fields', c.fields, \
                 '{row_key}', CASE WHEN {fits} THEN c.j END, 'actor_id', actor) END, \
             CASE WHEN {fits} THEN json_build_object('soiree.event_id', c.event_id) \
             ELSE json_build_object('soiree.event_id', c.event_id, '{PROPERTY_ROW_OMITTED}', true) END \
             FROM c"
        )
    };
    // Their `mutation.detected` events.
    let detected = |verb: &str| {
        format!(
            "INSERT INTO {schema}.soiree_events (topic, event_id, payload, properties) \
             SELECT 'mutation.detected', d.id, json_build_object('SchemaType', TG_ARGV[0], \
                 'ObjectID', c.row_id, 'Operation', '{verb}', 'ChangedFields', c.fields, \
                 'UserID', coalesce(actor, '')), \
             json_build_object('soiree.event_id', d.id) \
             FROM c CROSS JOIN LATERAL (SELECT gen_random_uuid()::text AS id) AS d"
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
         DECLARE actor text := nullif(current_setting('soiree.actor_id', true), ''); \
         BEGIN \
         IF TG_OP = 'INSERT' THEN {insert} ELSE {delete} END IF; \
         RETURN NULL; \
         END $soiree$",
        insert = branch(&inserted, "OpCreate", "after", "create"),
        delete = branch(&deleted, "OpDeleteOne", "before", "delete"),
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
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT attname::text FROM pg_attribute \
             WHERE attrelid = $1::bigint::oid AND attnum > 0 AND NOT attisdropped \
             ORDER BY attname COLLATE \"C\"",
        )
        .bind(oid)
        .fetch_all(&mut *tx)
        .await?;
        if !columns.contains(&trigger.id_column) {
            return Err(Error::InvalidConfig(format!(
                "table {table} has no column {:?}",
                trigger.id_column
            )));
        }
        let own = own_function(oid);
        for function in [
            FUNCTION
                .replace("{schema}", &schema)
                .replace("{row_limit}", &MAX_ROW_IMAGE_LEN.to_string())
                .replace("{omitted}", PROPERTY_ROW_OMITTED),
            rows_function(&schema, "soiree_capture_mutations", None),
            rows_function(&schema, &own, Some(&columns)),
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
                 FOR EACH ROW EXECUTE FUNCTION {schema}.soiree_capture_mutation({args})"
            ),
            format!(
                "CREATE OR REPLACE TRIGGER {delete} AFTER DELETE ON {table} \
                 REFERENCING OLD TABLE AS soiree_old_rows FOR EACH STATEMENT \
                 EXECUTE FUNCTION {schema}.soiree_capture_mutations({args})"
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
            drops.push(format!(
                "DROP FUNCTION IF EXISTS {}.{}();",
                quote_ident(self.schema()),
                own_function(oid)
            ));
            sqlx::raw_sql(AssertSqlSafe(drops.join(" ")))
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }
}

/// The name of a table's own insert function: by the table's oid, short
/// and unique whatever the table's name and schema.
fn own_function(oid: i64) -> String {
    format!("soiree_capture_inserts_{oid}")
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
    fn the_statement_function_names_the_quoted_schema_only() {
        let sql = rows_function("\"ev\"", "soiree_capture_mutations", None);
        assert!(sql.contains("INSERT INTO \"ev\".soiree_events"));
        assert!(!sql.contains("{schema}"));
        if std::env::var_os("SOIREE_PRINT_TRIGGER_SQL").is_some() {
            println!("{sql};");
        }
    }
}
