//! The SQLite SQL of the store, every statement named after its operation,
//! as PostgreSQL's `Statements`. SQLite needs no schema qualification: each
//! is a `&'static str`, assembled at compile time, but for the multi-row
//! inserts ([`MultiInsert`]).

use super::values::MultiInsert;

/// The ordering key (`soiree.key`) of a dead letter's properties text, or
/// NULL: dead letters keep no key column of their own.
macro_rules! key_from_properties {
    () => {
        "CASE WHEN json_valid(properties) AND json_type(properties) = 'object' \
           AND json_type(properties, '$.\"soiree.key\"') = 'text' \
         THEN json_extract(properties, '$.\"soiree.key\"') END"
    };
}

/// Copies dead letters into the retry table, due at `$run_at`, their
/// delivery count reset; the statement goes on with the `WHERE` that
/// chooses the letters.
macro_rules! retry_from_dead {
    ($run_at:literal) => {
        concat!(
            "INSERT INTO soiree_retries (group_name, event_row, topic, event_id, payload, \
               properties, deliveries, error, run_at, key) \
             SELECT group_name, event_row, coalesce(topic, ''), event_id, payload, \
               properties, 0, error, ",
            $run_at,
            ", ",
            key_from_properties!(),
            " FROM soiree_dead_letters"
        )
    };
}

/// The event `INSERT` of the outbox statement of [`outbox`](crate::outbox),
/// which is one statement with one parameter: a JSON array of `[topic,
/// event id, payload, properties, key]` rows
/// ([`append_param`](super::backend::append_param)). The store's appends
/// and `emit_in` bind the columns instead ([`APPEND_ROWS`]).
const APPEND: &str = "INSERT INTO soiree_events (topic, event_id, payload, properties, key) \
     SELECT value->>0, value->>1, value->>2, value->>3, value->>4 \
     FROM json_each(?1) ORDER BY key";

/// The event `INSERT` of the store's appends and `emit_in`, columns bound.
pub(crate) static APPEND_ROWS: MultiInsert = MultiInsert::new(
    "INSERT INTO soiree_events (topic, event_id, payload, properties, key) VALUES ",
    "(?, ?, ?, ?, ?)",
);

/// Listener results of a group; successes go to [`HANDLED_ROWS`] too.
pub(crate) static RESULT_ROWS: MultiInsert = MultiInsert::new(
    "INSERT INTO soiree_results (topic, event_id, handler_id, error, attempt, group_name) \
     VALUES ",
    "(?, ?, ?, ?, ?, ?)",
);

/// Listener successes of a group (event id, group, handler id), for dedup.
pub(crate) static HANDLED_ROWS: MultiInsert = MultiInsert::new(
    "INSERT OR IGNORE INTO soiree_handled (event_id, group_name, handler_id) VALUES ",
    "(?, ?, ?)",
);

/// Events not yet acknowledged by group `?1`: unclaimed, leased, or in the
/// retry table.
macro_rules! backlog {
    () => {
        "SELECT (SELECT count(*) FROM soiree_events WHERE id > \
       (SELECT claimed_id FROM soiree_cursors WHERE group_name = ?1)) \
     + (SELECT coalesce(sum(events), 0) FROM soiree_leases WHERE group_name = ?1) \
     + (SELECT count(*) FROM soiree_retries WHERE group_name = ?1)"
    };
}

/// The age in milliseconds (a float) of the oldest event group `?1` has not
/// acknowledged.
macro_rules! oldest {
    () => {
        "SELECT (julianday('now') - julianday(min(created_at))) * 86400000.0 FROM ( \
       SELECT * FROM (SELECT created_at FROM soiree_events WHERE id > \
         (SELECT claimed_id FROM soiree_cursors WHERE group_name = ?1) \
         ORDER BY id LIMIT 1) \
       UNION ALL \
       SELECT e.created_at FROM soiree_leases l JOIN soiree_events e ON e.id = l.lo_id \
       WHERE l.group_name = ?1 \
       UNION ALL \
       SELECT created_at FROM soiree_retries WHERE group_name = ?1)"
    };
}

/// The deliveries group `?1` holds at `?2` (Unix ms): its live leases (kind
/// 0) and its claimed retry rows (kind 1), idle since taken or extended
/// (`?3`: the lease timeout in milliseconds, by which an extension pushes
/// the expiry).
/// Then the lease's range (NULL for retry rows), the milliseconds left
/// before it expires, and a retry row's event id.
macro_rules! pending {
    () => {
        "SELECT 0 AS kind, id, consumer, max(0, ?2 - expires_at + ?3) AS idle_ms, \
       deliveries, events, NULL AS topic, NULL AS payload, NULL AS properties, \
       0 AS lo_tx, lo_id, 0 AS hi_tx, hi_id, expires_at - ?2 AS expires_ms, NULL AS event_id \
     FROM soiree_leases WHERE group_name = ?1 AND expires_at > ?2 \
     UNION ALL \
     SELECT 1, id, consumer, max(0, ?2 - run_at + ?3), deliveries, 1, topic, payload, properties, \
       NULL, NULL, NULL, NULL, run_at - ?2, event_id \
     FROM soiree_retries WHERE group_name = ?1 AND consumer IS NOT NULL AND run_at > ?2"
    };
}

/// A page `q` of `pending!` with the ids of the events each delivery
/// covers, as a JSON array (at most 100 per lease), computed for the page
/// only.
macro_rules! pending_ids {
    () => {
        "CASE WHEN q.kind = 0 THEN \
       (SELECT json_group_array(event_id) FROM ( \
          SELECT event_id FROM soiree_events \
          WHERE id BETWEEN q.lo_id AND q.hi_id ORDER BY id LIMIT 100)) \
     ELSE json_array(q.event_id) END"
    };
}

/// The consumers of group `?1` at `?2`: those holding deliveries, and
/// those whose heartbeat is live.
macro_rules! consumers {
    () => {
        concat!(
            "SELECT consumer, events, idle_ms FROM (",
            pending!(),
            ") \
     UNION ALL \
     SELECT consumer, 0, max(0, ?2 - last_seen) \
     FROM soiree_consumers WHERE group_name = ?1 AND expires_at > ?2"
        )
    };
}

/// Every statement of the SQLite store.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) append: &'static str,
    pub(crate) counts: &'static str,
    pub(crate) pending_asc: &'static str,
    pub(crate) pending_desc: &'static str,
    pub(crate) consumers: &'static str,
    pub(crate) backlog: &'static str,
    pub(crate) oldest: &'static str,
    pub(crate) next_token: &'static str,
    pub(crate) insert_lease: &'static str,
    pub(crate) succeeded: &'static str,
    pub(crate) claimed_position: &'static str,
    pub(crate) claim_range: &'static str,
    pub(crate) advance_cursor: &'static str,
    pub(crate) any_expired: &'static str,
    pub(crate) first_expired: &'static str,
    pub(crate) reclaim: &'static str,
    pub(crate) drop_lease: &'static str,
    pub(crate) lease_event_rows: &'static str,
    pub(crate) dead_letter_lease: &'static str,
    pub(crate) read: &'static str,
    pub(crate) read_unacked: &'static str,
    pub(crate) dead_letter_row: &'static str,
    pub(crate) complete: &'static str,
    pub(crate) extend: &'static str,
    pub(crate) events_page: &'static str,
    pub(crate) results_page: &'static str,
    pub(crate) any_due_retry: &'static str,
    pub(crate) claim_retries: &'static str,
    pub(crate) ack_retries: &'static str,
    pub(crate) retry_again: &'static str,
    pub(crate) retries_dead: &'static str,
    pub(crate) delete_retries: &'static str,
    pub(crate) extend_retries: &'static str,
    pub(crate) release_retries: &'static str,
    pub(crate) held_lease: &'static str,
    pub(crate) hand_back: &'static str,
    pub(crate) dead_ids: &'static str,
    pub(crate) topic_counts: &'static str,
    pub(crate) retry_event: &'static str,
    pub(crate) retry_dead_copy: &'static str,
    pub(crate) purge_dead: &'static str,
    pub(crate) prune: &'static str,
    pub(crate) key_blockers: &'static str,
    pub(crate) expire_consumers: &'static str,
    pub(crate) beat: &'static str,
    pub(crate) move_dead: &'static str,
    pub(crate) delete_dead: &'static str,
    pub(crate) waiting_unclaimed: &'static str,
    pub(crate) fail_leased_retry: &'static str,
    pub(crate) fail_leased_dead: &'static str,
}

/// The statements.
pub(crate) const SQL: Statements = Statements {
    append: APPEND,
    counts: concat!(
        "WITH p AS (",
        pending!(),
        ") SELECT \
               coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'soiree_events'), 0), \
               (SELECT count(*) FROM soiree_events), \
               (SELECT count(*) FROM soiree_results), \
               (SELECT count(*) FROM soiree_dead_letters WHERE group_name = ?1), \
               (",
        backlog!(),
        "), \
               CAST(round(max(0, (",
        oldest!(),
        "))) AS INTEGER), \
               (SELECT coalesce(sum(events), 0) FROM p), \
               (SELECT count(DISTINCT consumer) FROM ( \
                  SELECT consumer FROM p UNION ALL \
                  SELECT consumer FROM soiree_consumers \
                  WHERE group_name = ?1 AND expires_at > ?2))"
    ),
    pending_asc: concat!(
        "SELECT q.*, ",
        pending_ids!(),
        " FROM ( \
                       SELECT * FROM (",
        pending!(),
        ") WHERE (kind, id) > (?4, ?5) \
                       ORDER BY kind, id LIMIT ?6) q \
                     ORDER BY kind, id"
    ),
    pending_desc: concat!(
        "SELECT q.*, ",
        pending_ids!(),
        " FROM ( \
                       SELECT * FROM (",
        pending!(),
        ") WHERE (kind, id) < (?4, ?5) \
                       ORDER BY kind DESC, id DESC LIMIT ?6) q \
                     ORDER BY kind DESC, id DESC"
    ),
    consumers: concat!(
        "SELECT consumer, sum(events), min(idle_ms) FROM (",
        consumers!(),
        ") \
         GROUP BY consumer ORDER BY consumer"
    ),
    backlog: backlog!(),
    oldest: oldest!(),
    next_token: "UPDATE soiree_tokens SET next = next + 1 WHERE id = 1 RETURNING next",
    insert_lease: "INSERT INTO soiree_leases (group_name, token, consumer, lo_id, hi_id, events, \
             deliveries, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             RETURNING id, token, lo_id, hi_id, events, deliveries",
    // A join driven by the id list, one primary-key seek per id: `IN
    // (SELECT … json_each)` would first copy the list into a temporary
    // B-tree (one insert per claimed event).
    succeeded: "SELECT h.event_id, h.handler_id FROM json_each(?1) AS j \
             CROSS JOIN soiree_handled AS h \
             WHERE h.event_id = j.value AND h.group_name = ?2",
    claimed_position: "SELECT claimed_id FROM soiree_cursors WHERE group_name = ?1",
    claim_range: "SELECT min(id), max(id), count(*) FROM ( \
               SELECT id FROM soiree_events WHERE id > ?1 ORDER BY id LIMIT ?2)",
    advance_cursor: "UPDATE soiree_cursors SET claimed_id = ?2, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE group_name = ?1",
    any_expired: "SELECT EXISTS (SELECT 1 FROM soiree_leases WHERE group_name = ?1 AND expires_at < ?2)",
    first_expired: "SELECT id FROM soiree_leases WHERE group_name = ?1 AND expires_at < ?2 \
             ORDER BY lo_id LIMIT 1",
    reclaim: "UPDATE soiree_leases SET token = ?2, consumer = ?3, deliveries = deliveries + 1, \
             expires_at = ?4 WHERE id = ?1 \
             RETURNING id, token, lo_id, hi_id, events, deliveries",
    drop_lease: "DELETE FROM soiree_leases WHERE id = ?1 AND token = ?2",
    // Before the lease is dropped: its acknowledged events go with it.
    lease_event_rows: "SELECT e.id FROM soiree_events e WHERE e.id BETWEEN ?1 AND ?2 \
             AND NOT EXISTS (SELECT 1 FROM soiree_lease_acks a \
               WHERE a.lease_id = ?3 AND a.row_id = e.id) ORDER BY e.id",
    dead_letter_lease: "INSERT INTO soiree_dead_letters (group_name, event_row, topic, event_id, payload, \
               properties, error, deliveries) \
             SELECT ?1, e.id, e.topic, e.event_id, e.payload, e.properties, \
               'delivered ' || ?4 || ' times (max ' || ?5 || ')' || \
               coalesce('; last error: ' || ( \
                 SELECT r.error FROM soiree_results r \
                 WHERE r.event_id = e.event_id AND r.error IS NOT NULL \
                   AND (r.group_name = ?1 OR r.group_name IS NULL) \
                 ORDER BY r.id DESC LIMIT 1), ' without acknowledgement'), ?4 \
             FROM soiree_events e WHERE e.id BETWEEN ?2 AND ?3 \
             AND NOT EXISTS (SELECT 1 FROM soiree_lease_acks a \
               WHERE a.lease_id = ?6 AND a.row_id = e.id)",
    read: "SELECT id, topic, payload, properties, key FROM soiree_events \
             WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
    // A lease delivered before: without the events acknowledged in
    // transactional listeners' transactions (`fence.rs`).
    read_unacked: "SELECT e.id, e.topic, e.payload, e.properties, e.key FROM soiree_events e \
             WHERE e.id BETWEEN ?1 AND ?2 AND NOT EXISTS (SELECT 1 FROM soiree_lease_acks a \
               WHERE a.lease_id = ?3 AND a.row_id = e.id) ORDER BY e.id",
    // The event id comes from the log: the row may not parse.
    dead_letter_row: "INSERT INTO soiree_dead_letters (group_name, event_row, topic, event_id, \
                 payload, properties, error, deliveries) VALUES (?1, ?2, ?3, \
                 (SELECT event_id FROM soiree_events WHERE id = ?2), ?4, ?5, ?6, ?7)",
    complete: "DELETE FROM soiree_leases WHERE (id, token) IN \
             (SELECT value->>0, value->>1 FROM json_each(?1)) RETURNING id",
    extend: "UPDATE soiree_leases SET expires_at = ?2 WHERE (id, token) IN \
             (SELECT value->>0, value->>1 FROM json_each(?1)) RETURNING id",
    events_page: "SELECT id, topic, payload, properties, key FROM soiree_events \
             WHERE id > ?1 ORDER BY id LIMIT ?2",
    results_page: "SELECT id, topic, event_id, handler_id, error, attempt FROM soiree_results \
             WHERE id > ?1 ORDER BY id LIMIT ?2",
    any_due_retry: "SELECT EXISTS (SELECT 1 FROM soiree_retries WHERE group_name = ?1 AND run_at <= ?2)",
    claim_retries: "UPDATE soiree_retries SET token = ?3, deliveries = deliveries + 1, run_at = ?5, \
               consumer = ?6 \
             WHERE id IN (SELECT id FROM soiree_retries WHERE group_name = ?1 AND run_at <= ?2 \
               ORDER BY run_at, id LIMIT ?4) \
             RETURNING id, token, deliveries, event_row, topic, payload, properties, key",
    ack_retries: "DELETE FROM soiree_retries WHERE (id, token) IN \
             (SELECT value->>0, value->>1 FROM json_each(?1)) RETURNING id",
    retry_again: "UPDATE soiree_retries SET consumer = NULL, \
                   error = (SELECT value->>2 FROM json_each(?1) \
                     WHERE value->>0 = soiree_retries.id), \
                   run_at = ?2 + (SELECT value->>3 FROM json_each(?1) \
                     WHERE value->>0 = soiree_retries.id), \
                   deliveries = max(deliveries - (SELECT value->>4 FROM json_each(?1) \
                     WHERE value->>0 = soiree_retries.id), 0) \
                 WHERE (id, token) IN (SELECT value->>0, value->>1 FROM json_each(?1))",
    retries_dead: "INSERT INTO soiree_dead_letters (group_name, event_row, topic, event_id, payload, \
               properties, error, deliveries) \
             SELECT r.group_name, r.event_row, r.topic, r.event_id, r.payload, r.properties, \
               u.value->>2, r.deliveries \
             FROM json_each(?1) u \
             JOIN soiree_retries r ON r.id = u.value->>0 AND r.token = u.value->>1",
    delete_retries: "DELETE FROM soiree_retries WHERE (id, token) IN \
             (SELECT value->>0, value->>1 FROM json_each(?1))",
    extend_retries: "UPDATE soiree_retries SET run_at = ?2 WHERE (id, token) IN \
             (SELECT value->>0, value->>1 FROM json_each(?1)) RETURNING id",
    release_retries: "UPDATE soiree_retries SET run_at = ?2, deliveries = max(deliveries - 1, 0), \
               consumer = NULL \
             WHERE (id, token) IN (SELECT value->>0, value->>1 FROM json_each(?1))",
    held_lease: "SELECT deliveries, consumer FROM soiree_leases WHERE id = ?1 AND token = ?2",
    hand_back: "INSERT INTO soiree_leases (group_name, token, consumer, lo_id, hi_id, events, \
                 deliveries, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    dead_ids: "SELECT id FROM soiree_dead_letters WHERE group_name = ?1 \
               AND (?2 IS NULL OR topic = ?2) AND (?3 IS NULL OR event_id = ?3) \
             ORDER BY id LIMIT ?4",
    topic_counts: "SELECT topic, count(*) FROM \
               (SELECT topic FROM soiree_events ORDER BY id DESC LIMIT ?1) \
             GROUP BY topic",
    retry_event: "INSERT INTO soiree_retries (group_name, event_row, topic, event_id, payload, \
               properties, deliveries, run_at, key) \
             SELECT ?1, id, topic, event_id, payload, properties, 0, ?3, key \
             FROM soiree_events WHERE id = ?2",
    retry_dead_copy: concat!(retry_from_dead!("?3"), " WHERE group_name = ?1 AND id = ?2"),
    purge_dead: "DELETE FROM soiree_dead_letters WHERE group_name = ?1 \
               AND (?2 IS NULL OR id IN (SELECT value FROM json_each(?2)))",
    prune: "DELETE FROM soiree_events WHERE id IN ( \
               SELECT id FROM soiree_events \
               WHERE id <= (SELECT min(claimed_id) FROM soiree_cursors) \
                 AND id < coalesce((SELECT min(lo_id) FROM soiree_leases), 9223372036854775807) \
                 AND created_at < strftime('%Y-%m-%dT%H:%M:%fZ', ?1 / 1000.0, 'unixepoch') \
               ORDER BY id LIMIT ?2)",
    key_blockers: "SELECT k, min(i) FROM ( \
               SELECT e.key AS k, e.id AS i FROM soiree_leases l \
               JOIN soiree_events e ON e.id BETWEEN l.lo_id AND l.hi_id \
               WHERE l.group_name = ?1 AND l.lo_id < ?3 AND e.id < ?3 \
                 AND e.key IN (SELECT value FROM json_each(?2)) \
                 AND (l.id, l.token) NOT IN (SELECT value->>0, value->>1 FROM json_each(?4)) \
               UNION ALL \
               SELECT r.key, r.event_row FROM soiree_retries r \
               WHERE r.group_name = ?1 AND r.event_row < ?3 \
                 AND r.key IN (SELECT value FROM json_each(?2)) \
                 AND (r.id, r.token) NOT IN (SELECT value->>0, value->>1 FROM json_each(?5))) \
             GROUP BY k",
    expire_consumers: "DELETE FROM soiree_consumers WHERE group_name = ?1 AND expires_at < ?2",
    beat: "INSERT INTO soiree_consumers (group_name, consumer, last_seen, expires_at) \
             VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (group_name, consumer) DO UPDATE \
               SET last_seen = excluded.last_seen, expires_at = excluded.expires_at",
    move_dead: concat!(
        retry_from_dead!("?2"),
        " WHERE group_name = ?3 AND id IN (SELECT value FROM json_each(?1)) ORDER BY id"
    ),
    delete_dead: "DELETE FROM soiree_dead_letters \
             WHERE group_name = ?2 AND id IN (SELECT value FROM json_each(?1))",
    waiting_unclaimed: "SELECT EXISTS (SELECT 1 FROM soiree_events WHERE id > \
               (SELECT claimed_id FROM soiree_cursors WHERE group_name = ?1))",
    fail_leased_retry: "INSERT INTO soiree_retries (group_name, event_row, topic, event_id, payload, \
               properties, deliveries, error, run_at, key) \
             SELECT ?1, e.id, e.topic, e.event_id, e.payload, e.properties, \
               max(l.deliveries - u.value->>5, 0), u.value->>3, ?3 + u.value->>4, e.key \
             FROM json_each(?2) u \
             JOIN soiree_leases l ON l.id = u.value->>0 AND l.token = u.value->>1 \
             JOIN soiree_events e ON e.id = u.value->>2",
    fail_leased_dead: "INSERT INTO soiree_dead_letters (group_name, event_row, topic, event_id, payload, \
               properties, error, deliveries) \
             SELECT ?1, e.id, e.topic, e.event_id, e.payload, e.properties, u.value->>3, \
               l.deliveries + 0 * ?3 \
             FROM json_each(?2) u \
             JOIN soiree_leases l ON l.id = u.value->>0 AND l.token = u.value->>1 \
             JOIN soiree_events e ON e.id = u.value->>2",
};
