-- Failed deliveries waiting to be delivered again (FailurePolicy::Redeliver)
-- and replayed dead letters: a small table claimed with SKIP LOCKED. A
-- claimed row's run_at is its lease expiry; token fences its acknowledgement.
CREATE TABLE soiree_retries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_name text NOT NULL,
    event_tx xid8,
    event_row bigint NOT NULL,
    topic text NOT NULL,
    event_id text,
    payload text,
    properties text,
    deliveries integer NOT NULL,
    token bigint NOT NULL DEFAULT 0,
    error text,
    run_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX soiree_retries_due ON soiree_retries (group_name, run_at);
CREATE INDEX soiree_dead_letters_group ON soiree_dead_letters (group_name, id);
