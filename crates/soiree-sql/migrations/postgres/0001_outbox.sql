-- The log: append-only, one row per event, read in (tx, id) order and only
-- below the oldest running transaction, so that a transaction committing
-- late is never skipped.
CREATE TABLE soiree_events (
    id bigint GENERATED ALWAYS AS IDENTITY,
    tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
    topic text NOT NULL,
    event_id text,
    payload json,
    properties json,
    key text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tx, id)
);

-- One row per consumer group: how far the group has claimed.
CREATE TABLE soiree_cursors (
    group_name text PRIMARY KEY,
    claimed_tx xid8 NOT NULL DEFAULT '0',
    claimed_id bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE soiree_lease_tokens;

-- Claimed ranges lo..=hi of the log, held under a fencing token until every
-- event of the range is acknowledged, or until they expire.
CREATE TABLE soiree_leases (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_name text NOT NULL,
    token bigint NOT NULL,
    consumer text NOT NULL,
    lo_tx xid8 NOT NULL,
    lo_id bigint NOT NULL,
    hi_tx xid8 NOT NULL,
    hi_id bigint NOT NULL,
    events integer NOT NULL,
    deliveries integer NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX soiree_leases_expiry ON soiree_leases (group_name, expires_at);

-- The outcome of every listener attempt.
CREATE TABLE soiree_results (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic text NOT NULL,
    event_id text NOT NULL,
    handler_id text NOT NULL,
    error text,
    attempt integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The listeners that succeeded per event id (handler dedup).
CREATE TABLE soiree_handled (
    event_id text NOT NULL,
    handler_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, handler_id)
);

-- Events that could not be delivered: rows that are not events, and events
-- delivered more than max_deliveries times.
CREATE TABLE soiree_dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_name text NOT NULL,
    event_tx xid8,
    event_row bigint NOT NULL,
    topic text,
    event_id text,
    payload text,
    properties text,
    error text NOT NULL,
    deliveries integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
