-- Failed deliveries waiting to be delivered again (FailurePolicy::Redeliver)
-- and replayed dead letters. run_at in Unix milliseconds; a claimed row's
-- run_at is its lease expiry; token fences its acknowledgement.
CREATE TABLE soiree_retries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_name TEXT NOT NULL,
    event_row INTEGER NOT NULL,
    topic TEXT NOT NULL,
    event_id TEXT,
    payload TEXT,
    properties TEXT,
    deliveries INTEGER NOT NULL,
    token INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    run_at INTEGER NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX soiree_retries_due ON soiree_retries (group_name, run_at);
CREATE INDEX soiree_dead_letters_group ON soiree_dead_letters (group_name, id);
