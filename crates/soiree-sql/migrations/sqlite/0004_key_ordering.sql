-- Per-key ordering (the stores' `ordered_by_key` option): a row of the
-- retry table keeps the ordering key of its event, so that later events of
-- the key wait for it. NULL for unkeyed events and rows written before.
ALTER TABLE soiree_retries ADD COLUMN key TEXT;
CREATE INDEX soiree_retries_key ON soiree_retries (group_name, key);
