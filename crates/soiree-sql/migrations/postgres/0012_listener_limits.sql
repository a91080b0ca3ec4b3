-- Listener concurrency limits shared by every process: a slot of a key is
-- held by a holder until expires_ms (Unix milliseconds); expired slots are
-- freed by the next acquisition of the key and by retention.
CREATE TABLE soiree_limit_slots (
    key TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (key, holder)
);
CREATE INDEX soiree_limit_slots_expiry ON soiree_limit_slots (expires_ms);

-- Listener rates (GCRA without burst): the earliest start of a key's next
-- run, in Unix milliseconds; a row in the past is as good as none.
CREATE TABLE soiree_limit_rates (
    key TEXT PRIMARY KEY,
    next_ms BIGINT NOT NULL
);
CREATE INDEX soiree_limit_rates_next ON soiree_limit_rates (next_ms);
