-- Delayed events wait here, out of the log, until due_ms (Unix
-- milliseconds); consumers move due rows into the log. Cancelled by event id.
CREATE TABLE soiree_scheduled (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    event_id TEXT,
    payload TEXT,
    properties TEXT,
    key TEXT,
    due_ms INTEGER NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX soiree_scheduled_due ON soiree_scheduled (due_ms, id);
CREATE INDEX soiree_scheduled_event ON soiree_scheduled (event_id);

-- Unique keys at emit: the first event's id holds the key until
-- expires_ms (Unix milliseconds); an expired key is replaced.
CREATE TABLE soiree_unique_keys (
    key TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
-- Retention deletes expired keys.
CREATE INDEX soiree_unique_keys_expiry ON soiree_unique_keys (expires_ms);
