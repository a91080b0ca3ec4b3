-- Delayed events wait here, out of the log, until due_ms (Unix
-- milliseconds); consumers move due rows into the log (SKIP LOCKED).
-- Cancelled by event id.
CREATE TABLE soiree_scheduled (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic text NOT NULL,
    event_id text,
    payload text,
    properties text,
    key text,
    due_ms bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX soiree_scheduled_due ON soiree_scheduled (due_ms, id);
CREATE INDEX soiree_scheduled_event ON soiree_scheduled (event_id);

-- Unique keys at emit: the first event's id holds the key until
-- expires_ms (Unix milliseconds); an expired key is replaced.
CREATE TABLE soiree_unique_keys (
    key text PRIMARY KEY,
    event_id text NOT NULL,
    expires_ms bigint NOT NULL
);
-- Retention deletes expired keys.
CREATE INDEX soiree_unique_keys_expiry ON soiree_unique_keys (expires_ms);
