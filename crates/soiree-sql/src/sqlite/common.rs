//! The statements whose logic is written once over both databases
//! ([`CommonSql`]), as SQLite spells them.

use crate::backend::CommonSql;

pub(super) const COMMON: CommonSql = CommonSql {
    schedule: "INSERT INTO soiree_scheduled \
     (topic, event_id, payload, properties, key, due_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    next_due: "SELECT due_ms FROM soiree_scheduled ORDER BY due_ms LIMIT 1",
    claim_unique: "INSERT INTO soiree_unique_keys (key, event_id, expires_ms) \
     VALUES (?1, ?2, ?3) \
     ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id, \
       expires_ms = excluded.expires_ms \
     WHERE soiree_unique_keys.expires_ms <= ?4 \
     RETURNING event_id",
    unique_holder: "SELECT event_id FROM soiree_unique_keys WHERE key = ?1",
    prune_unique: "DELETE FROM soiree_unique_keys WHERE key IN \
     (SELECT key FROM soiree_unique_keys WHERE expires_ms <= ?1 LIMIT ?2)",
    // The transaction (`BEGIN IMMEDIATE`, one writer) serializes takers.
    lock_limit_key: None,
    free_slots: "DELETE FROM soiree_limit_slots WHERE key = ?1 AND expires_ms <= ?2",
    take_slot: "INSERT INTO soiree_limit_slots (key, holder, expires_ms) \
     SELECT ?1, ?2, ?3 WHERE (SELECT count(*) FROM soiree_limit_slots WHERE key = ?1) < ?4",
    take_rate: "INSERT INTO soiree_limit_rates (key, next_ms) \
     VALUES (?1, ?2 + ?3) \
     ON CONFLICT (key) DO UPDATE SET next_ms = excluded.next_ms \
     WHERE soiree_limit_rates.next_ms <= ?2 \
     RETURNING next_ms",
    rate_next: "SELECT next_ms FROM soiree_limit_rates WHERE key = ?1",
    prune_slots: "DELETE FROM soiree_limit_slots WHERE rowid IN \
     (SELECT rowid FROM soiree_limit_slots WHERE expires_ms <= ?1 LIMIT ?2)",
    prune_rates: "DELETE FROM soiree_limit_rates WHERE key IN \
     (SELECT key FROM soiree_limit_rates WHERE next_ms <= ?1 LIMIT ?2)",
};
