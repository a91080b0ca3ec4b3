//! The PostgreSQL SQL of the store.

use std::sync::Arc;

use async_trait::async_trait;
use soiree::StoredResult;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr, SqlStr};

use super::partitions::Partitions;
use crate::Result;
use crate::SqlDeadLetterFilter;
use crate::backend::{
    Backend, Claim, CommonSql, ConsumerRow, Counts, DeadRow, FailedRetry, FailedRow, LeaseRow,
    NewEvent, Param, PendingRow, Pos, RawEvent, RetryRow, Run, bind_params,
};
use crate::rows::{self, ListingRow, Listings};

/// Every statement of the store, with its tables qualified by the schema.
#[derive(Debug)]
pub(crate) struct Statements {
    /// The schema, to qualify the listings' statements built per call.
    schema: String,
    counts: SqlStr,
    pending_asc: SqlStr,
    pending_desc: SqlStr,
    consumers: SqlStr,
    topic_counts: SqlStr,
    beat: SqlStr,
    retry_event: SqlStr,
    retry_dead_copy: SqlStr,
    replay_dead_ids: SqlStr,
    dead_properties: SqlStr,
    purge_dead: SqlStr,
    pub(crate) append: SqlStr,
    save_results: SqlStr,
    succeeded: SqlStr,
    pub(crate) ensure_cursor: SqlStr,
    claim_rows: SqlStr,
    waiting: SqlStr,
    reclaim: SqlStr,
    split: SqlStr,
    dead_letter_lease: SqlStr,
    read: SqlStr,
    read_unacked: SqlStr,
    dead_letter_rows: SqlStr,
    complete: SqlStr,
    extend: SqlStr,
    backlog: SqlStr,
    events_first: SqlStr,
    events_after: SqlStr,
    results_page: SqlStr,
    notify: SqlStr,
    fail_dead: SqlStr,
    fail_retry: SqlStr,
    claim_retries: SqlStr,
    ack_retries: SqlStr,
    retries_dead: SqlStr,
    retries_again: SqlStr,
    extend_retries: SqlStr,
    release_retries: SqlStr,
    hand_back: SqlStr,
    replay_dead: SqlStr,
    prune: SqlStr,
    oldest: SqlStr,
    xmin_lag: SqlStr,
    key_blockers: SqlStr,
}

const LEASE_COLUMNS: &str =
    "id, token, lo_tx::text::bigint, lo_id, hi_tx::text::bigint, hi_id, events::bigint, deliveries";
const EVENT_COLUMNS: &str = "tx::text::bigint, id, topic, payload::text, properties::text, key";
/// In a row of `claim_rows`: where the event's columns start (after the
/// lease's), and the column saying whether events wait.
const CLAIM_EVENT: usize = 8;
const CLAIM_WAITING: usize = 16;

/// Events not yet acknowledged by group `$1`: unclaimed, leased, or in the
/// retry table.
const BACKLOG: &str = "SELECT ( \
                   SELECT count(*) FROM soiree_events e WHERE (e.tx, e.id) > ( \
                     (SELECT claimed_tx FROM soiree_cursors WHERE group_name = $1), \
                     (SELECT claimed_id FROM soiree_cursors WHERE group_name = $1))) \
                 + (SELECT coalesce(sum(events), 0) FROM soiree_leases \
                    WHERE group_name = $1) \
                 + (SELECT count(*) FROM soiree_retries WHERE group_name = $1)";

/// The age in milliseconds of the oldest event group `$1` has not acknowledged.
const OLDEST: &str = "SELECT (extract(epoch FROM clock_timestamp() - min(created_at)) * 1000)::bigint \
                 FROM ( \
                   (SELECT e.created_at FROM soiree_events e WHERE (e.tx, e.id) > ( \
                      (SELECT claimed_tx FROM soiree_cursors WHERE group_name = $1), \
                      (SELECT claimed_id FROM soiree_cursors WHERE group_name = $1)) \
                    ORDER BY e.tx, e.id LIMIT 1) \
                   UNION ALL \
                   SELECT e.created_at FROM soiree_leases l JOIN soiree_events e \
                     ON e.tx = l.lo_tx AND e.id = l.lo_id WHERE l.group_name = $1 \
                   UNION ALL \
                   SELECT created_at FROM soiree_retries WHERE group_name = $1) s";

/// A row's time in microseconds since the epoch.
const AT_US: &str = "(extract(epoch FROM created_at) * 1000000)::bigint";

/// The deliveries group `$1` holds: its live leases (kind 0) and its claimed
/// retry rows (kind 1), idle since taken or extended (`$2`: the lease
/// timeout in milliseconds, by which an extension pushes the expiry).
/// Then the lease's range (NULL for retry rows), the milliseconds left
/// before it expires, and a retry row's event id.
const PENDING: &str = "SELECT 0 AS kind, id, consumer, \
       greatest(0, (extract(epoch FROM clock_timestamp() - expires_at) * 1000)::bigint + $2) \
         AS idle_ms, \
       deliveries::bigint AS deliveries, events::bigint AS events, \
       NULL::text AS topic, NULL::text AS payload, NULL::text AS properties, \
       lo_tx::text::bigint AS lo_tx, lo_id, hi_tx::text::bigint AS hi_tx, hi_id, \
       (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint AS expires_ms, \
       NULL::text AS event_id \
     FROM soiree_leases WHERE group_name = $1 AND expires_at > clock_timestamp() \
     UNION ALL \
     SELECT 1, id, consumer, \
       greatest(0, (extract(epoch FROM clock_timestamp() - run_at) * 1000)::bigint + $2), \
       deliveries::bigint, 1, topic, payload, properties, NULL, NULL, NULL, NULL, \
       (extract(epoch FROM run_at - clock_timestamp()) * 1000)::bigint, event_id \
     FROM soiree_retries \
     WHERE group_name = $1 AND consumer IS NOT NULL AND run_at > clock_timestamp()";

/// A page `q` of [`PENDING`] with the ids of the events each delivery
/// covers, as a JSON array (at most 100 per lease), computed for the page
/// only.
const PENDING_IDS: &str = "CASE WHEN q.kind = 0 THEN \
       (SELECT coalesce(json_agg(r.event_id ORDER BY r.tx, r.id), '[]')::text FROM ( \
          SELECT e.tx, e.id, e.event_id FROM soiree_events e \
          WHERE (e.tx, e.id) >= (q.lo_tx::text::xid8, q.lo_id) \
            AND (e.tx, e.id) <= (q.hi_tx::text::xid8, q.hi_id) \
          ORDER BY e.tx, e.id LIMIT 100) r) \
     ELSE json_build_array(q.event_id)::text END";

/// The consumers of group `$1`: those holding deliveries, and those whose
/// heartbeat is live (`$2`: the lease timeout, as for [`PENDING`]).
const CONSUMERS: &str = "SELECT consumer, events, idle_ms FROM ({PENDING}) p \
     UNION ALL \
     SELECT consumer, 0, \
       greatest(0, (extract(epoch FROM clock_timestamp() - last_seen) * 1000)::bigint) \
     FROM soiree_consumers WHERE group_name = $1 AND expires_at > clock_timestamp()";

/// The columns of a retry row made from a dead letter, but its key. The
/// key is read from the properties in Rust ([`dead_key`]): evaluating the
/// stored JSON in SQL fails for a whole statement on one value PostgreSQL
/// cannot convert (a `\u0000` anywhere in it) or on text that is not JSON.
const RETRY_FROM_DEAD: &str = "group_name, event_tx, event_row, coalesce(topic, ''), event_id, \
     payload, properties, 0, error, clock_timestamp()";

/// The event id (`soiree.event_id`) of a dead letter's stored properties.
fn dead_event_id_of(properties: Option<&str>) -> Option<String> {
    let properties: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(properties?).ok()?;
    properties
        .get(soiree::PROPERTY_EVENT_ID)?
        .as_str()
        .map(str::to_owned)
}

/// The ordering key (`soiree.key`) of a dead letter's stored properties,
/// when they are a JSON object holding a string key (without NUL, which a
/// text column cannot hold).
fn dead_key(properties: Option<&str>) -> Option<String> {
    let properties: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(properties?).ok()?;
    match properties.get(crate::PROPERTY_KEY)? {
        serde_json::Value::String(key) if !key.contains('\0') => Some(key.clone()),
        _ => None,
    }
}

/// Event ids longer than this many bytes are not copied into the dead
/// letters' `event_id` column: its index (with the group name) could not
/// hold them, and a dead letter that cannot be written would be delivered
/// forever. Such a letter is still found by its event id, through its
/// properties (`soiree.event_id`).
const DEAD_EVENT_ID_BYTES: usize = 1024;

/// The event id column `column` as a dead letter stores it (see
/// [`DEAD_EVENT_ID_BYTES`]).
fn dead_event_id(column: &str) -> String {
    format!("CASE WHEN octet_length({column}) <= {DEAD_EVENT_ID_BYTES} THEN {column} END")
}

/// The event `INSERT`, the only one: the store's appends, `emit_in` and
/// the outbox statement of [`outbox`](crate::outbox) run it. Five text
/// arrays (topic, event id, payload, properties, key), in order.
pub(crate) const APPEND: &str = "INSERT INTO soiree_events (topic, event_id, payload, properties, key) \
     SELECT t, e, p::json, pr::json, k \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
     WITH ORDINALITY AS u(t, e, p, pr, k, n) ORDER BY n";

/// `sql` with the store's tables qualified by `schema`.
pub(crate) fn qualify(schema: &str, sql: &str) -> SqlStr {
    let sql = sql
        .replace("soiree_", &format!("\"{schema}\".soiree_"))
        .replace("DEAD_EVENT_ID_OF(event_id)", &dead_event_id("event_id"))
        .replace("DEAD_EVENT_ID", &dead_event_id("e.event_id"))
        .replace("LEASE_COLUMNS", LEASE_COLUMNS)
        .replace("EVENT_COLUMNS", EVENT_COLUMNS);
    AssertSqlSafe(Arc::<str>::from(sql)).into_sql_str()
}

impl Statements {
    /// The schema of the store's tables.
    pub(crate) fn schema(&self) -> &str {
        &self.schema
    }

    pub(crate) fn new(schema: &str) -> Self {
        let q = |sql: &str| qualify(schema, sql);
        Self {
            schema: schema.to_owned(),
            counts: q(&format!(
                "WITH p AS ({PENDING}) SELECT \
                   CASE WHEN has_sequence_privilege('soiree_events_id_seq', 'SELECT') \
                     THEN coalesce(pg_sequence_last_value('soiree_events_id_seq'), 0) \
                     ELSE (SELECT coalesce(max(id), 0) FROM soiree_events) END, \
                   (SELECT count(*) FROM soiree_events), \
                   (SELECT count(*) FROM soiree_results), \
                   (SELECT count(*) FROM soiree_dead_letters WHERE group_name = $1), \
                   ({BACKLOG}), ({OLDEST}), \
                   (SELECT coalesce(sum(events), 0)::bigint FROM p), \
                   (SELECT count(DISTINCT consumer) FROM ( \
                      SELECT consumer FROM p UNION ALL \
                      SELECT consumer FROM soiree_consumers \
                      WHERE group_name = $1 AND expires_at > clock_timestamp()) c)"
            )),
            pending_asc: q(&format!(
                "SELECT q.*, {PENDING_IDS} FROM ( \
                   SELECT * FROM ({PENDING}) p WHERE (kind, id) > ($3, $4) \
                   ORDER BY kind, id LIMIT $5) q \
                 ORDER BY kind, id"
            )),
            pending_desc: q(&format!(
                "SELECT q.*, {PENDING_IDS} FROM ( \
                   SELECT * FROM ({PENDING}) p WHERE (kind, id) < ($3, $4) \
                   ORDER BY kind DESC, id DESC LIMIT $5) q \
                 ORDER BY kind DESC, id DESC"
            )),
            topic_counts: q("SELECT topic, count(*) FROM \
                 (SELECT topic FROM soiree_events ORDER BY id DESC LIMIT $1) AS newest \
                 GROUP BY topic"),
            consumers: q(&format!(
                "SELECT consumer, sum(events)::bigint, min(idle_ms) FROM ({}) c \
                 GROUP BY consumer ORDER BY consumer",
                CONSUMERS.replace("{PENDING}", PENDING)
            )),
            beat: q("WITH gone AS ( \
                   DELETE FROM soiree_consumers WHERE group_name = $1 \
                     AND expires_at < clock_timestamp() - interval '1 day') \
                 INSERT INTO soiree_consumers (group_name, consumer, last_seen, expires_at) \
                 VALUES ($1, $2, clock_timestamp(), \
                   clock_timestamp() + $3 * interval '1 millisecond') \
                 ON CONFLICT (group_name, consumer) DO UPDATE \
                   SET last_seen = excluded.last_seen, expires_at = excluded.expires_at"),
            retry_event: q(
                "INSERT INTO soiree_retries (group_name, event_tx, event_row, topic, \
                   event_id, payload, properties, deliveries, run_at, key) \
                 SELECT $1, tx, id, topic, event_id, payload::text, properties::text, 0, \
                   clock_timestamp(), key \
                 FROM soiree_events WHERE id = $2 ORDER BY tx DESC LIMIT 1",
            ),
            retry_dead_copy: q(&format!(
                "INSERT INTO soiree_retries (group_name, event_tx, event_row, topic, event_id, \
                   payload, properties, deliveries, error, run_at, key) \
                 SELECT {RETRY_FROM_DEAD}, $3 FROM soiree_dead_letters \
                 WHERE group_name = $1 AND id = $2"
            )),
            dead_properties: q("SELECT id, properties FROM soiree_dead_letters \
                 WHERE group_name = $1 AND id = ANY($2::bigint[])"),
            replay_dead_ids: q(&format!(
                "WITH gone AS ( \
                   DELETE FROM soiree_dead_letters d \
                   USING unnest($2::bigint[], $3::text[]) AS u(id, key) \
                   WHERE d.group_name = $1 AND d.id = u.id RETURNING d.*, u.key AS replay_key) \
                 INSERT INTO soiree_retries (group_name, event_tx, event_row, topic, event_id, \
                   payload, properties, deliveries, error, run_at, key) \
                 SELECT {RETRY_FROM_DEAD}, replay_key FROM gone ORDER BY id"
            )),
            purge_dead: q("DELETE FROM soiree_dead_letters WHERE group_name = $1 \
                 AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))"),
            append: q(APPEND),
            // Results and successes are the group's own ($6): another
            // group's listener of the same name has not run for this one.
            save_results: q("WITH r AS ( \
                   INSERT INTO soiree_results (topic, event_id, handler_id, error, attempt, \
                     group_name) \
                   SELECT t, e, h, err, a, $6 \
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[]) \
                   WITH ORDINALITY AS u(t, e, h, err, a, n) ORDER BY n \
                   RETURNING event_id, handler_id, error) \
                 INSERT INTO soiree_handled (event_id, group_name, handler_id) \
                 SELECT DISTINCT event_id, $6, handler_id FROM r \
                 WHERE error IS NULL AND event_id <> '' \
                 ORDER BY event_id, handler_id \
                 ON CONFLICT DO NOTHING"),
            succeeded: q("SELECT event_id, handler_id FROM soiree_handled \
                 WHERE event_id = ANY($1::text[]) AND group_name = $2"),
            ensure_cursor: q("INSERT INTO soiree_cursors (group_name) VALUES ($1) \
                 ON CONFLICT DO NOTHING"),
            // Locks the group's cursor for the statement only, and only when
            // there is a range to claim (an empty claim writes nothing: no
            // transaction id, no WAL flush): finds the next range below the
            // oldest running transaction, moves the cursor past it, records
            // the lease and returns it with its events, one row each, and
            // the successes recorded for their event ids. With nothing to
            // claim, one row of NULLs but the last column: whether events
            // wait behind an open transaction (as `waiting`).
            claim_rows: q("WITH c AS ( \
                   SELECT claimed_tx, claimed_id FROM soiree_cursors cur \
                   WHERE group_name = $1 AND EXISTS ( \
                     SELECT 1 FROM soiree_events e \
                     WHERE (e.tx, e.id) > (cur.claimed_tx, cur.claimed_id) \
                       AND e.tx < pg_snapshot_xmin(pg_current_snapshot())) \
                   FOR UPDATE), \
                 span AS ( \
                   SELECT e.tx, e.id, e.topic, e.payload, e.properties, e.key, e.event_id \
                   FROM soiree_events e \
                   WHERE (e.tx, e.id) > ((SELECT claimed_tx FROM c), (SELECT claimed_id FROM c)) \
                     AND e.tx < pg_snapshot_xmin(pg_current_snapshot()) \
                   ORDER BY e.tx, e.id LIMIT $2), \
                 lo AS (SELECT tx, id FROM span ORDER BY tx, id LIMIT 1), \
                 hi AS (SELECT tx, id FROM span ORDER BY tx DESC, id DESC LIMIT 1), \
                 n AS (SELECT count(*)::int AS n FROM span), \
                 moved AS ( \
                   UPDATE soiree_cursors SET claimed_tx = hi.tx, claimed_id = hi.id, \
                     updated_at = now() \
                   FROM hi WHERE group_name = $1), \
                 l AS ( \
                   INSERT INTO soiree_leases (group_name, token, consumer, lo_tx, lo_id, \
                     hi_tx, hi_id, events, deliveries, expires_at) \
                   SELECT $1, nextval('soiree_lease_tokens'), $3, lo.tx, lo.id, hi.tx, hi.id, \
                     n.n, 1, clock_timestamp() + $4 * interval '1 millisecond' \
                   FROM lo, hi, n \
                   RETURNING LEASE_COLUMNS) \
                 SELECT l.*, s.tx::text::bigint, s.id, s.topic, s.payload::text, \
                   s.properties::text, s.key, s.event_id, \
                   ARRAY(SELECT h.handler_id FROM soiree_handled h \
                     WHERE h.event_id = s.event_id AND h.group_name = $1), \
                   NULL::bool \
                 FROM l, span s \
                 UNION ALL \
                 SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
                   NULL, NULL, NULL, NULL, NULL, EXISTS ( \
                     SELECT 1 FROM soiree_events e, soiree_cursors cur \
                     WHERE cur.group_name = $1 \
                       AND (e.tx, e.id) > (cur.claimed_tx, cur.claimed_id)) \
                 WHERE NOT EXISTS (SELECT 1 FROM l) \
                 ORDER BY 9, 10"),
            waiting: q("SELECT EXISTS ( \
                   SELECT 1 FROM soiree_events e WHERE (e.tx, e.id) > ( \
                     (SELECT claimed_tx FROM soiree_cursors WHERE group_name = $1), \
                     (SELECT claimed_id FROM soiree_cursors WHERE group_name = $1)))"),
            reclaim: q(
                "UPDATE soiree_leases SET token = nextval('soiree_lease_tokens'), \
                   consumer = $2, deliveries = deliveries + 1, \
                   expires_at = clock_timestamp() + $3 * interval '1 millisecond' \
                 WHERE id = ( \
                   SELECT id FROM soiree_leases \
                   WHERE group_name = $1 AND expires_at < clock_timestamp() \
                   ORDER BY lo_tx, lo_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING LEASE_COLUMNS",
            ),
            split: q("WITH old AS ( \
                   DELETE FROM soiree_leases WHERE id = $1 AND token = $2 RETURNING *) \
                 INSERT INTO soiree_leases (group_name, token, consumer, lo_tx, lo_id, \
                   hi_tx, hi_id, events, deliveries, expires_at) \
                 SELECT old.group_name, nextval('soiree_lease_tokens'), $3, e.tx, e.id, \
                   e.tx, e.id, 1, old.deliveries, \
                   clock_timestamp() + $4 * interval '1 millisecond' \
                 FROM old JOIN soiree_events e \
                   ON (e.tx, e.id) >= (old.lo_tx, old.lo_id) \
                  AND (e.tx, e.id) <= (old.hi_tx, old.hi_id) \
                 WHERE NOT EXISTS (SELECT 1 FROM soiree_lease_acks a \
                   WHERE a.lease_id = old.id AND a.row_id = e.id) \
                 ORDER BY e.tx, e.id \
                 RETURNING LEASE_COLUMNS"),
            dead_letter_lease: q("WITH old AS ( \
                   DELETE FROM soiree_leases WHERE id = $1 AND token = $2 RETURNING *) \
                 INSERT INTO soiree_dead_letters (group_name, event_tx, event_row, topic, \
                   event_id, payload, properties, error, deliveries) \
                 SELECT old.group_name, e.tx, e.id, e.topic, DEAD_EVENT_ID, e.payload::text, \
                   e.properties::text, \
                   'delivered ' || old.deliveries || ' times (max ' || $3::int || ')' || \
                   coalesce('; last error: ' || ( \
                     SELECT r.error FROM soiree_results r \
                     WHERE r.event_id = e.event_id AND r.error IS NOT NULL \
                       AND (r.group_name = old.group_name OR r.group_name IS NULL) \
                     ORDER BY r.id DESC LIMIT 1), ' without acknowledgement'), \
                   old.deliveries \
                 FROM old JOIN soiree_events e \
                   ON (e.tx, e.id) >= (old.lo_tx, old.lo_id) \
                  AND (e.tx, e.id) <= (old.hi_tx, old.hi_id) \
                 WHERE NOT EXISTS (SELECT 1 FROM soiree_lease_acks a \
                   WHERE a.lease_id = old.id AND a.row_id = e.id)"),
            read: q("SELECT EVENT_COLUMNS FROM soiree_events \
                 WHERE (tx, id) >= ($1::bigint::text::xid8, $2) \
                   AND (tx, id) <= ($3::bigint::text::xid8, $4) \
                 ORDER BY tx, id"),
            // A lease delivered before: without the events acknowledged in
            // transactional listeners' transactions (`fence.rs`).
            read_unacked: q("SELECT EVENT_COLUMNS FROM soiree_events e \
                 WHERE (tx, id) >= ($1::bigint::text::xid8, $2) \
                   AND (tx, id) <= ($3::bigint::text::xid8, $4) \
                   AND NOT EXISTS (SELECT 1 FROM soiree_lease_acks a \
                     WHERE a.lease_id = $5 AND a.row_id = e.id) \
                 ORDER BY tx, id"),
            // The event id comes from the log: the row may not parse.
            dead_letter_rows: q("INSERT INTO soiree_dead_letters (group_name, event_tx, \
                   event_row, topic, event_id, payload, properties, error, deliveries) \
                 SELECT $1, t::text::xid8, i, tp, \
                   (SELECT DEAD_EVENT_ID FROM soiree_events e \
                    WHERE e.tx = t::text::xid8 AND e.id = i), p, pr, err, d \
                 FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], \
                   $7::text[], $8::int[]) AS u(t, i, tp, p, pr, err, d)"),
            complete: q("DELETE FROM soiree_leases l \
                 USING unnest($1::bigint[], $2::bigint[]) AS u(id, token) \
                 WHERE l.id = u.id AND l.token = u.token RETURNING l.id"),
            extend: q("UPDATE soiree_leases l \
                 SET expires_at = clock_timestamp() + $3 * interval '1 millisecond' \
                 FROM unnest($1::bigint[], $2::bigint[]) AS u(id, token) \
                 WHERE l.id = u.id AND l.token = u.token RETURNING l.id"),
            backlog: q(BACKLOG),
            events_first: q("SELECT EVENT_COLUMNS FROM soiree_events ORDER BY tx, id LIMIT $1"),
            events_after: q("SELECT EVENT_COLUMNS FROM soiree_events \
                 WHERE (tx, id) > ($1::bigint::text::xid8, $2) ORDER BY tx, id LIMIT $3"),
            results_page: q("SELECT id, topic, event_id, handler_id, error, attempt \
                 FROM soiree_results WHERE id > $1 ORDER BY id LIMIT $2"),
            notify: q("SELECT pg_notify($1, $2)"),
            fail_dead: q(
                "INSERT INTO soiree_dead_letters (group_name, event_tx, event_row, \
                   topic, event_id, payload, properties, error, deliveries) \
                 SELECT $1, e.tx, e.id, e.topic, DEAD_EVENT_ID, e.payload::text, \
                   e.properties::text, u.err, l.deliveries \
                 FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], \
                   $6::text[], $7::bigint[]) AS u(lease, token, t, i, err, delay) \
                 JOIN soiree_leases l ON l.id = u.lease AND l.token = u.token \
                 JOIN soiree_events e ON e.tx = u.t::text::xid8 AND e.id = u.i",
            ),
            fail_retry: q(
                "INSERT INTO soiree_retries (group_name, event_tx, event_row, \
                   topic, event_id, payload, properties, deliveries, error, run_at, key) \
                 SELECT $1, e.tx, e.id, e.topic, e.event_id, e.payload::text, \
                   e.properties::text, greatest(l.deliveries - u.less, 0), u.err, \
                   clock_timestamp() + u.delay * interval '1 millisecond', e.key \
                 FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], \
                   $6::text[], $7::bigint[], $8::int[]) AS u(lease, token, t, i, err, delay, less) \
                 JOIN soiree_leases l ON l.id = u.lease AND l.token = u.token \
                 JOIN soiree_events e ON e.tx = u.t::text::xid8 AND e.id = u.i",
            ),
            claim_retries: q(
                "UPDATE soiree_retries SET token = nextval('soiree_lease_tokens'), \
                   deliveries = deliveries + 1, consumer = $4, \
                   run_at = clock_timestamp() + $3 * interval '1 millisecond' \
                 WHERE id IN ( \
                   SELECT id FROM soiree_retries \
                   WHERE group_name = $1 AND run_at <= clock_timestamp() \
                   ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, token, deliveries, coalesce(event_tx::text::bigint, 0), \
                   event_row, topic, payload, properties, key",
            ),
            ack_retries: q("DELETE FROM soiree_retries r \
                 USING unnest($1::bigint[], $2::bigint[]) AS u(id, token) \
                 WHERE r.id = u.id AND r.token = u.token RETURNING r.id"),
            retries_dead: q("WITH gone AS ( \
                   DELETE FROM soiree_retries r \
                   USING unnest($1::bigint[], $2::bigint[], $3::text[]) AS u(id, token, err) \
                   WHERE r.id = u.id AND r.token = u.token RETURNING r.*, u.err) \
                 INSERT INTO soiree_dead_letters (group_name, event_tx, event_row, topic, \
                   event_id, payload, properties, error, deliveries) \
                 SELECT group_name, event_tx, event_row, topic, \
                   DEAD_EVENT_ID_OF(event_id), payload, properties, err, deliveries FROM gone"),
            retries_again: q(
                "UPDATE soiree_retries r SET error = u.err, consumer = NULL, \
                   run_at = clock_timestamp() + u.delay * interval '1 millisecond', \
                   deliveries = greatest(r.deliveries - u.less, 0) \
                 FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::int[]) \
                   AS u(id, token, err, delay, less) \
                 WHERE r.id = u.id AND r.token = u.token",
            ),
            extend_retries: q("UPDATE soiree_retries r \
                 SET run_at = clock_timestamp() + $3 * interval '1 millisecond' \
                 FROM unnest($1::bigint[], $2::bigint[]) AS u(id, token) \
                 WHERE r.id = u.id AND r.token = u.token RETURNING r.id"),
            release_retries: q("UPDATE soiree_retries r SET run_at = clock_timestamp(), \
                   consumer = NULL, \
                   deliveries = greatest(r.deliveries - 1, 0) \
                 FROM unnest($1::bigint[], $2::bigint[]) AS u(id, token) \
                 WHERE r.id = u.id AND r.token = u.token"),
            hand_back: q(
                "INSERT INTO soiree_leases (group_name, token, consumer, lo_tx, lo_id, \
                   hi_tx, hi_id, events, deliveries, expires_at) \
                 SELECT l.group_name, nextval('soiree_lease_tokens'), l.consumer, \
                   u.lt::text::xid8, u.li, u.ht::text::xid8, u.hi, u.n, \
                   greatest(l.deliveries - 1, 0), clock_timestamp() - interval '1 second' \
                 FROM soiree_leases l, unnest($3::bigint[], $4::bigint[], $5::bigint[], \
                   $6::bigint[], $7::int[]) AS u(lt, li, ht, hi, n) \
                 WHERE l.id = $1 AND l.token = $2",
            ),
            // The letters to move, with their properties for their keys
            // (see `RETRY_FROM_DEAD`); `replay_dead_ids` moves them.
            // A letter of an id too long for the column has none there
            // (`dead_event_id`): its properties are checked in Rust.
            replay_dead: q(&format!(
                "SELECT id, properties, event_id IS NULL FROM soiree_dead_letters \
                 WHERE group_name = $1 AND ($2::text IS NULL OR topic = $2) \
                   AND ($3::text IS NULL OR event_id = $3 \
                     OR (event_id IS NULL AND octet_length($3) > {DEAD_EVENT_ID_BYTES})) \
                 ORDER BY id LIMIT $4"
            )),
            // Below every group's cursor and every lease's start, older than
            // the window, oldest first, one batch: of the DEFAULT partition
            // only (range partitions go whole, see `partitions`).
            prune: q("WITH c AS ( \
                   SELECT claimed_tx, claimed_id FROM soiree_cursors \
                   ORDER BY claimed_tx, claimed_id LIMIT 1), \
                 l AS ( \
                   SELECT lo_tx, lo_id FROM soiree_leases ORDER BY lo_tx, lo_id LIMIT 1) \
                 DELETE FROM soiree_events_default WHERE (tx, id) IN ( \
                   SELECT e.tx, e.id FROM soiree_events_default e, c \
                   WHERE (e.tx, e.id) <= (c.claimed_tx, c.claimed_id) \
                     AND NOT EXISTS (SELECT 1 FROM l WHERE (e.tx, e.id) >= (l.lo_tx, l.lo_id)) \
                     AND e.created_at < now() - $1 * interval '1 millisecond' \
                   ORDER BY e.tx, e.id LIMIT $2)"),
            oldest: q(OLDEST),
            // Per key, the earliest event before the bound that is in a lease
            // or in the retry table of the group, other than this consumer's
            // own leases and retry rows (tracked in memory). The events of a
            // lease are found through the log's primary key.
            key_blockers: q("SELECT DISTINCT ON (k) k, t, i FROM ( \
                   SELECT e.key AS k, e.tx::text::bigint AS t, e.id AS i \
                   FROM soiree_leases l JOIN soiree_events e \
                     ON (e.tx, e.id) >= (l.lo_tx, l.lo_id) AND (e.tx, e.id) <= (l.hi_tx, l.hi_id) \
                   WHERE l.group_name = $1 AND e.key = ANY($2::text[]) \
                     AND (l.lo_tx, l.lo_id) < ($3::bigint::text::xid8, $4) \
                     AND (e.tx, e.id) < ($3::bigint::text::xid8, $4) \
                     AND NOT EXISTS (SELECT 1 FROM unnest($5::bigint[], $6::bigint[]) \
                       AS o(id, token) WHERE o.id = l.id AND o.token = l.token) \
                   UNION ALL \
                   SELECT r.key, coalesce(r.event_tx::text::bigint, 0), r.event_row \
                   FROM soiree_retries r \
                   WHERE r.group_name = $1 AND r.key = ANY($2::text[]) \
                     AND (coalesce(r.event_tx, '0'::xid8), r.event_row) \
                       < ($3::bigint::text::xid8, $4) \
                     AND NOT EXISTS (SELECT 1 FROM unnest($7::bigint[], $8::bigint[]) \
                       AS o(id, token) WHERE o.id = r.id AND o.token = r.token)) b \
                 ORDER BY k, t, i"),
            xmin_lag: q("SELECT (pg_snapshot_xmax(s)::text::bigint \
                   - pg_snapshot_xmin(s)::text::bigint) FROM pg_current_snapshot() AS s"),
        }
    }
}

/// The PostgreSQL side of a store: its pool, group and statements.
#[derive(Debug)]
pub struct PgBackend {
    pub(crate) pool: PgPool,
    pub(crate) sql: Arc<Statements>,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) lease_ms: i64,
    pub(crate) channel: String,
    /// The payload of this store's `NOTIFY`: its listener skips them, as
    /// [`wake`](crate::core::Core::wake) woke its consumers already.
    pub(crate) notify_tag: String,
    pub(crate) partitions: Partitions,
    /// Whether consumers `LISTEN` (the builder's `listen`).
    pub(crate) listen: bool,
    /// Whether this store's listening task was started.
    pub(crate) listening: std::sync::atomic::AtomicBool,
}

/// A text array in PostgreSQL's text form (`{"a",NULL}`), for data layers
/// that bind only text: [`APPEND`]'s `$n::text[]` reads it. Every element
/// is quoted, `"` and `\` escaped.
pub(crate) fn text_array<'a>(items: impl Iterator<Item = Option<&'a str>>) -> String {
    let mut array = String::from("{");
    for (n, item) in items.enumerate() {
        if n > 0 {
            array.push(',');
        }
        match item {
            None => array.push_str("NULL"),
            Some(text) => {
                array.push('"');
                for c in text.chars() {
                    if c == '"' || c == '\\' {
                        array.push('\\');
                    }
                    array.push(c);
                }
                array.push('"');
            }
        }
    }
    array.push('}');
    array
}

/// Binds the columns of new events as arrays, for the append statement.
pub(crate) fn bind_events<'q>(
    sql: &SqlStr,
    events: &[NewEvent],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut topics = Vec::with_capacity(events.len());
    let mut ids = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    let mut properties = Vec::with_capacity(events.len());
    let mut keys = Vec::with_capacity(events.len());
    for event in events {
        topics.push(event.topic.clone());
        ids.push(event.event_id.clone());
        payloads.push(event.payload.clone());
        properties.push(event.properties.clone());
        keys.push(event.key.clone());
    }
    sqlx::query(sql.clone())
        .bind(topics)
        .bind(ids)
        .bind(payloads)
        .bind(properties)
        .bind(keys)
}

impl PgBackend {
    /// Runs a statement on the group and one row id; returns the rows it wrote.
    async fn by_id(&self, sql: &SqlStr, id: i64) -> Result<u64> {
        let done = sqlx::query(sql.clone())
            .bind(&self.group)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Dead letters moved to the retry table per statement by `replay_dead`.
const REPLAY_BATCH: usize = 1000;

/// `(id, key)` of rows `id, properties` of the dead letters.
fn keyed_letters(rows: &[PgRow]) -> Result<Vec<(i64, Option<String>)>> {
    rows.iter()
        .map(|row| {
            let properties: Option<String> = row.try_get(1)?;
            Ok((row.try_get(0)?, dead_key(properties.as_deref())))
        })
        .collect()
}

impl PgBackend {
    /// `(id, key)` of the group's dead letters with these ids, for
    /// [`move_dead`](Self::move_dead).
    async fn dead_keys(&self, ids: &[i64]) -> Result<Vec<(i64, Option<String>)>> {
        let rows = sqlx::query(self.sql.dead_properties.clone())
            .bind(&self.group)
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        keyed_letters(&rows)
    }

    /// Moves the group's dead letters `(id, key)` to the retry table, due
    /// at once, in one statement; returns how many. When the database
    /// refuses the batch for good (a letter's key too large for the retry
    /// table's index), moves them one by one and leaves the letters it
    /// refuses where they are (logged): one bad letter does not hold the
    /// others back.
    async fn move_dead(&self, letters: &[(i64, Option<String>)]) -> Result<u64> {
        match self.move_dead_batch(letters).await {
            Err(err) if err.is_permanent() && letters.len() > 1 => {
                let mut moved = 0;
                for letter in letters {
                    match self.move_dead_batch(std::slice::from_ref(letter)).await {
                        Ok(done) => moved += done,
                        Err(err) if err.is_permanent() => tracing::warn!(
                            %err, letter = letter.0,
                            "the database refuses to replay this dead letter; it stays"
                        ),
                        Err(err) => return Err(err),
                    }
                }
                Ok(moved)
            }
            outcome => outcome,
        }
    }

    async fn move_dead_batch(&self, letters: &[(i64, Option<String>)]) -> Result<u64> {
        let (ids, keys): (Vec<i64>, Vec<Option<String>>) = letters.iter().cloned().unzip();
        let done = sqlx::query(self.sql.replay_dead_ids.clone())
            .bind(&self.group)
            .bind(ids)
            .bind(keys)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

fn pairs(leases: &[(i64, i64)]) -> (Vec<i64>, Vec<i64>) {
    leases.iter().copied().unzip()
}

#[async_trait]
impl Backend for PgBackend {
    type ListedRow = PgRow;
    const LISTINGS: Listings =
        rows::listings(AT_US, "id, AT_US, topic, payload::text, properties::text");
    const COMMON: CommonSql = super::common::COMMON;

    fn lock_scope(&self) -> &str {
        self.sql.schema()
    }

    fn placeholder(n: usize) -> String {
        format!("${n}")
    }

    fn group(&self) -> &str {
        &self.group
    }

    async fn fetch(&self, sql: String, params: Vec<Param>) -> Result<Vec<Self::ListedRow>> {
        let query = sqlx::query(qualify(&self.sql.schema, &sql));
        Ok(bind_params(query, params).fetch_all(&self.pool).await?)
    }

    async fn fetch_written(&self, sql: String, params: Vec<Param>) -> Result<Vec<Self::ListedRow>> {
        self.fetch(sql, params).await
    }

    async fn execute(&self, sql: String, params: Vec<Param>) -> Result<u64> {
        let query = sqlx::query(qualify(&self.sql.schema, &sql));
        let done = bind_params(query, params).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    async fn append(&self, events: &[NewEvent]) -> Result<()> {
        bind_events(&self.sql.append, events)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn save_results(&self, results: &[StoredResult]) -> Result<()> {
        let mut topics = Vec::with_capacity(results.len());
        let mut events = Vec::with_capacity(results.len());
        let mut handlers = Vec::with_capacity(results.len());
        let mut errors = Vec::with_capacity(results.len());
        let mut attempts = Vec::with_capacity(results.len());
        for result in results {
            topics.push(result.topic.as_str());
            events.push(result.event_id.as_str());
            handlers.push(result.handler_id.as_str());
            errors.push(result.error.as_deref());
            attempts.push(i32::try_from(result.attempt).unwrap_or(i32::MAX));
        }
        sqlx::query(self.sql.save_results.clone())
            .bind(topics)
            .bind(events)
            .bind(handlers)
            .bind(errors)
            .bind(attempts)
            .bind(&self.group)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn succeeded(&self, event_ids: &[String]) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(self.sql.succeeded.clone())
            .bind(event_ids)
            .bind(&self.group)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    async fn claim(&self, max: usize) -> Result<Option<LeaseRow>> {
        Ok(match self.claim_rows(max).await? {
            Claim::Lease(lease, _) => Some(lease),
            Claim::Empty(_) => None,
        })
    }

    /// One statement: the claim, its events and their successes (see
    /// `claim_rows` in [`Statements::new`]).
    async fn claim_rows(&self, max: usize) -> Result<Claim> {
        let rows = sqlx::query(self.sql.claim_rows.clone())
            .bind(&self.group)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(&self.consumer)
            .bind(self.lease_ms)
            .fetch_all(&self.pool)
            .await?;
        let Some(first) = rows.first() else {
            return Ok(Claim::Empty(None));
        };
        if first.try_get::<Option<i64>, _>(0)?.is_none() {
            return Ok(Claim::Empty(first.try_get(CLAIM_WAITING)?));
        }
        let lease = first.lease()?;
        let events = rows
            .iter()
            .map(|row| {
                let (pos, next) = row.pos_at(CLAIM_EVENT)?;
                let event = row.raw_event_at(next, pos, true)?;
                Ok((event, row.try_get(next + 4)?, row.try_get(next + 5)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Claim::Lease(lease, Some(events)))
    }

    async fn waiting(&self) -> Result<bool> {
        Ok(sqlx::query_scalar(self.sql.waiting.clone())
            .bind(&self.group)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn reclaim(&self) -> Result<Option<LeaseRow>> {
        let row = sqlx::query(self.sql.reclaim.clone())
            .bind(&self.group)
            .bind(&self.consumer)
            .bind(self.lease_ms)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(ListingRow::lease).transpose()
    }

    async fn split(&self, lease_row: &LeaseRow) -> Result<Vec<LeaseRow>> {
        let rows = sqlx::query(self.sql.split.clone())
            .bind(lease_row.id)
            .bind(lease_row.token)
            .bind(&self.consumer)
            .bind(self.lease_ms)
            .fetch_all(&self.pool)
            .await?;
        let mut leases = rows
            .iter()
            .map(ListingRow::lease)
            .collect::<Result<Vec<_>>>()?;
        leases.sort_by_key(|lease| lease.lo);
        Ok(leases)
    }

    async fn dead_letter_lease(&self, lease: &LeaseRow, max_deliveries: u32) -> Result<u64> {
        let done = sqlx::query(self.sql.dead_letter_lease.clone())
            .bind(lease.id)
            .bind(lease.token)
            .bind(i32::try_from(max_deliveries).unwrap_or(i32::MAX))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn read(&self, lease: &LeaseRow) -> Result<Vec<RawEvent>> {
        // A first delivery has no acknowledged events: the plain read.
        let unacked = lease.deliveries > 1;
        let sql = if unacked {
            &self.sql.read_unacked
        } else {
            &self.sql.read
        };
        let mut query = sqlx::query(sql.clone())
            .bind(lease.lo.tx)
            .bind(lease.lo.id)
            .bind(lease.hi.tx)
            .bind(lease.hi.id);
        if unacked {
            query = query.bind(lease.id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(ListingRow::raw_event).collect()
    }

    async fn dead_letter_rows(&self, rows: &[DeadRow]) -> Result<()> {
        let txs: Vec<i64> = rows.iter().map(|r| r.event.pos.tx).collect();
        let ids: Vec<i64> = rows.iter().map(|r| r.event.pos.id).collect();
        let topics: Vec<&str> = rows.iter().map(|r| r.event.topic.as_str()).collect();
        let payloads: Vec<Option<&str>> = rows.iter().map(|r| r.event.payload.as_deref()).collect();
        let properties: Vec<Option<&str>> =
            rows.iter().map(|r| r.event.properties.as_deref()).collect();
        let errors: Vec<&str> = rows.iter().map(|r| r.error.as_str()).collect();
        let deliveries: Vec<i32> = rows.iter().map(|r| r.deliveries).collect();
        sqlx::query(self.sql.dead_letter_rows.clone())
            .bind(&self.group)
            .bind(txs)
            .bind(ids)
            .bind(topics)
            .bind(payloads)
            .bind(properties)
            .bind(errors)
            .bind(deliveries)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn complete(&self, leases: &[(i64, i64)]) -> Result<Vec<i64>> {
        let (ids, tokens) = pairs(leases);
        Ok(sqlx::query_scalar(self.sql.complete.clone())
            .bind(ids)
            .bind(tokens)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn extend(&self, leases: &[(i64, i64)]) -> Result<Vec<i64>> {
        let (ids, tokens) = pairs(leases);
        Ok(sqlx::query_scalar(self.sql.extend.clone())
            .bind(ids)
            .bind(tokens)
            .bind(self.lease_ms)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn backlog(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(self.sql.backlog.clone())
            .bind(&self.group)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn events_page(&self, after: Option<Pos>, limit: usize) -> Result<Vec<RawEvent>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match after {
            None => {
                sqlx::query(self.sql.events_first.clone())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(pos) => {
                sqlx::query(self.sql.events_after.clone())
                    .bind(pos.tx)
                    .bind(pos.id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(ListingRow::raw_event).collect()
    }

    async fn results_page(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, StoredResult)>> {
        let rows = sqlx::query(self.sql.results_page.clone())
            .bind(after.unwrap_or(0))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let attempt: i32 = row.try_get(5)?;
                Ok((
                    row.try_get(0)?,
                    StoredResult {
                        topic: row.try_get(1)?,
                        event_id: row.try_get(2)?,
                        handler_id: row.try_get(3)?,
                        error: row.try_get(4)?,
                        attempt: u32::try_from(attempt).unwrap_or(0),
                    },
                ))
            })
            .collect()
    }

    async fn fail_leased(&self, rows: &[FailedRow], retry: bool) -> Result<u64> {
        let sql = if retry {
            &self.sql.fail_retry
        } else {
            &self.sql.fail_dead
        };
        let mut query = sqlx::query(sql.clone())
            .bind(&self.group)
            .bind(rows.iter().map(|r| r.lease).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.token).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.pos.tx).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.pos.id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.error.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.delay_ms).collect::<Vec<_>>());
        if retry {
            query = query.bind(rows.iter().map(|r| r.uncounted).collect::<Vec<_>>());
        }
        let done = query.execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    async fn claim_retries(&self, max: usize) -> Result<Vec<RetryRow>> {
        let rows = sqlx::query(self.sql.claim_retries.clone())
            .bind(&self.group)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(self.lease_ms)
            .bind(&self.consumer)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ListingRow::retry_row).collect()
    }

    async fn ack_retries(&self, rows: &[(i64, i64)]) -> Result<Vec<i64>> {
        let (ids, tokens) = pairs(rows);
        Ok(sqlx::query_scalar(self.sql.ack_retries.clone())
            .bind(ids)
            .bind(tokens)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn fail_retries(&self, rows: &[FailedRetry], retry: bool) -> Result<u64> {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let tokens: Vec<i64> = rows.iter().map(|r| r.token).collect();
        let errors: Vec<&str> = rows.iter().map(|r| r.error.as_str()).collect();
        let query = if retry {
            sqlx::query(self.sql.retries_again.clone())
                .bind(ids)
                .bind(tokens)
                .bind(errors)
                .bind(rows.iter().map(|r| r.delay_ms).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.uncounted).collect::<Vec<_>>())
        } else {
            sqlx::query(self.sql.retries_dead.clone())
                .bind(ids)
                .bind(tokens)
                .bind(errors)
        };
        Ok(query.execute(&self.pool).await?.rows_affected())
    }

    async fn extend_retries(&self, rows: &[(i64, i64)]) -> Result<Vec<i64>> {
        let (ids, tokens) = pairs(rows);
        Ok(sqlx::query_scalar(self.sql.extend_retries.clone())
            .bind(ids)
            .bind(tokens)
            .bind(self.lease_ms)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn release_retries(&self, rows: &[(i64, i64)]) -> Result<()> {
        let (ids, tokens) = pairs(rows);
        sqlx::query(self.sql.release_retries.clone())
            .bind(ids)
            .bind(tokens)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn hand_back(&self, lease: (i64, i64), runs: &[Run]) -> Result<bool> {
        let done = sqlx::query(self.sql.hand_back.clone())
            .bind(lease.0)
            .bind(lease.1)
            .bind(runs.iter().map(|r| r.lo.tx).collect::<Vec<_>>())
            .bind(runs.iter().map(|r| r.lo.id).collect::<Vec<_>>())
            .bind(runs.iter().map(|r| r.hi.tx).collect::<Vec<_>>())
            .bind(runs.iter().map(|r| r.hi.id).collect::<Vec<_>>())
            .bind(runs.iter().map(|r| r.events).collect::<Vec<_>>())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn counts(&self) -> Result<Counts> {
        let row = sqlx::query(self.sql.counts.clone())
            .bind(&self.group)
            .bind(self.lease_ms)
            .fetch_one(&self.pool)
            .await?;
        row.counts()
    }

    async fn pending(
        &self,
        after: Option<(i64, i64)>,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<PendingRow>> {
        let (sql, start) = if newest_first {
            (&self.sql.pending_desc, (2, 0))
        } else {
            (&self.sql.pending_asc, (-1, 0))
        };
        let (kind, id) = after.unwrap_or(start);
        let rows = sqlx::query(sql.clone())
            .bind(&self.group)
            .bind(self.lease_ms)
            .bind(kind)
            .bind(id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ListingRow::pending_row).collect()
    }

    async fn topic_counts(&self, window: usize) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(self.sql.topic_counts.clone())
            .bind(i64::try_from(window).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn consumers(&self) -> Result<Vec<ConsumerRow>> {
        let rows = sqlx::query(self.sql.consumers.clone())
            .bind(&self.group)
            .bind(self.lease_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ListingRow::consumer_row).collect()
    }

    async fn retry_event(&self, id: i64) -> Result<u64> {
        self.by_id(&self.sql.retry_event, id).await
    }

    async fn retry_dead_copy(&self, id: i64) -> Result<u64> {
        let key = self.dead_keys(&[id]).await?.pop().and_then(|(_, key)| key);
        let done = sqlx::query(self.sql.retry_dead_copy.clone())
            .bind(&self.group)
            .bind(id)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn replay_dead_ids(&self, ids: &[i64]) -> Result<u64> {
        let keyed = self.dead_keys(ids).await?;
        self.move_dead(&keyed).await
    }

    async fn purge_dead(&self, ids: Option<&[i64]>) -> Result<u64> {
        let done = sqlx::query(self.sql.purge_dead.clone())
            .bind(&self.group)
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn replay_dead(&self, filter: &SqlDeadLetterFilter) -> Result<u64> {
        let rows = sqlx::query(self.sql.replay_dead.clone())
            .bind(&self.group)
            .bind(filter.topic.as_deref())
            .bind(filter.event_id.as_deref())
            .bind(i64::try_from(filter.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        let mut keyed = Vec::with_capacity(rows.len());
        for row in &rows {
            let properties: Option<String> = row.try_get(1)?;
            let no_column: bool = row.try_get(2)?;
            if let Some(wanted) = filter.event_id.as_deref()
                && no_column
                && dead_event_id_of(properties.as_deref()).as_deref() != Some(wanted)
            {
                continue;
            }
            keyed.push((row.try_get(0)?, dead_key(properties.as_deref())));
        }
        let mut moved = 0;
        for batch in keyed.chunks(REPLAY_BATCH) {
            moved += self.move_dead(batch).await?;
        }
        Ok(moved)
    }

    async fn prune(&self, older_than_ms: i64, batch: usize) -> Result<u64> {
        let done = sqlx::query(self.sql.prune.clone())
            .bind(older_than_ms)
            .bind(i64::try_from(batch).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn prune_partitions(&self, older_than_ms: i64) -> Result<u64> {
        self.partitions.prune(&self.pool, older_than_ms).await
    }

    async fn oldest_unconsumed_ms(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(self.sql.oldest.clone())
            .bind(&self.group)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn xmin_lag(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(self.sql.xmin_lag.clone())
            .fetch_one(&self.pool)
            .await?)
    }

    async fn key_blockers(
        &self,
        keys: &[String],
        before: Pos,
        own_leases: &[(i64, i64)],
        own_retries: &[(i64, i64)],
    ) -> Result<Vec<(String, Pos)>> {
        let (lease_ids, lease_tokens) = pairs(own_leases);
        let (retry_ids, retry_tokens) = pairs(own_retries);
        let rows = sqlx::query(self.sql.key_blockers.clone())
            .bind(&self.group)
            .bind(keys)
            .bind(before.tx)
            .bind(before.id)
            .bind(lease_ids)
            .bind(lease_tokens)
            .bind(retry_ids)
            .bind(retry_tokens)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    Pos {
                        tx: row.try_get(1)?,
                        id: row.try_get(2)?,
                    },
                ))
            })
            .collect()
    }

    async fn beat(&self, live_ms: i64) -> Result<()> {
        sqlx::query(self.sql.beat.clone())
            .bind(&self.group)
            .bind(&self.consumer)
            .bind(live_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn lacking(&self, grants: &[(&'static str, &'static str)]) -> Result<String> {
        let (privileges, tables): (Vec<&str>, Vec<&str>) = grants.iter().copied().unzip();
        let (role, read_only, lacking): (String, bool, Vec<String>) = sqlx::query_as(
            "SELECT current_user::text, current_setting('transaction_read_only') = 'on', \
               coalesce(array_agg(p || ' on ' || format('%I.%I', $3::text, t) ORDER BY n) \
                 FILTER (WHERE NOT has_table_privilege(format('%I.%I', $3::text, t), p)), \
                 '{}') \
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(p, t, n)",
        )
        .bind(&privileges)
        .bind(&tables)
        .bind(self.sql.schema())
        .fetch_one(&self.pool)
        .await?;
        Ok(if !lacking.is_empty() {
            format!("role {role:?} lacks {}", lacking.join(", "))
        } else if read_only {
            "the store was opened read-only (default_transaction_read_only)".to_owned()
        } else {
            format!("role {role:?} lacks a privilege PostgreSQL did not name")
        })
    }

    async fn notify_others(&self) -> Result<()> {
        sqlx::query(self.sql.notify.clone())
            .bind(&self.channel)
            .bind(&self.notify_tag)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letters_key_and_id_are_read_whatever_else_it_holds() {
        let properties = r#"{"note":"a\u0000b","soiree.key":"k","soiree.event_id":"e"}"#;
        assert_eq!(dead_key(Some(properties)).as_deref(), Some("k"));
        assert_eq!(dead_event_id_of(Some(properties)).as_deref(), Some("e"));
        for no_key in [
            None,
            Some("not json"),
            Some("[1]"),
            Some(r#"{"soiree.key":7}"#),
            Some(r#"{"soiree.key":"k\u0000"}"#),
        ] {
            assert_eq!(dead_key(no_key), None, "{no_key:?}");
        }
    }

    #[test]
    fn long_event_ids_stay_out_of_the_dead_letters_column() {
        let sql = qualify("s", "SELECT DEAD_EVENT_ID, DEAD_EVENT_ID_OF(event_id)");
        assert_eq!(
            sql.as_str(),
            "SELECT CASE WHEN octet_length(e.event_id) <= 1024 THEN e.event_id END, \
             CASE WHEN octet_length(event_id) <= 1024 THEN event_id END"
        );
    }

    #[test]
    fn text_arrays_quote_every_element_and_escape_quotes_and_backslashes() {
        let items = [
            Some("a\"b"),
            None,
            Some("x\\y"),
            Some(""),
            Some("NULL"),
            Some("{,}"),
        ];
        assert_eq!(
            text_array(items.into_iter()),
            r#"{"a\"b",NULL,"x\\y","","NULL","{,}"}"#
        );
    }
}
