-- The log: append-only, one row per event. SQLite serializes writers, so
-- ids are assigned in commit order and the id alone is a gap-free cursor.
CREATE TABLE soiree_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    event_id TEXT,
    payload TEXT,
    properties TEXT,
    key TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- One row per consumer group: how far the group has claimed.
CREATE TABLE soiree_cursors (
    group_name TEXT PRIMARY KEY,
    claimed_id INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- The fencing token counter.
CREATE TABLE soiree_tokens (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next INTEGER NOT NULL
);
INSERT INTO soiree_tokens (id, next) VALUES (1, 0);

-- Claimed ranges lo..=hi of the log; expires_at in Unix milliseconds.
CREATE TABLE soiree_leases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_name TEXT NOT NULL,
    token INTEGER NOT NULL,
    consumer TEXT NOT NULL,
    lo_id INTEGER NOT NULL,
    hi_id INTEGER NOT NULL,
    events INTEGER NOT NULL,
    deliveries INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX soiree_leases_expiry ON soiree_leases (group_name, expires_at);

CREATE TABLE soiree_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    event_id TEXT NOT NULL,
    handler_id TEXT NOT NULL,
    error TEXT,
    attempt INTEGER NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE soiree_handled (
    event_id TEXT NOT NULL,
    handler_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (event_id, handler_id)
) WITHOUT ROWID;

CREATE TABLE soiree_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_name TEXT NOT NULL,
    event_row INTEGER NOT NULL,
    topic TEXT,
    event_id TEXT,
    payload TEXT,
    properties TEXT,
    error TEXT NOT NULL,
    deliveries INTEGER NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
