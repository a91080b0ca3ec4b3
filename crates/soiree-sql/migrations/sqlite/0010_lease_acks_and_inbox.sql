-- Events of a lease acknowledged inside a transactional listener's
-- transaction (the listener was the event's last one to run): a lease taken
-- over after its consumer died delivers the rest of its events only. Rows
-- go with their lease (a trigger: foreign keys are off by default).
CREATE TABLE soiree_lease_acks (
    lease_id INTEGER NOT NULL,
    row_id INTEGER NOT NULL,
    PRIMARY KEY (lease_id, row_id)
) WITHOUT ROWID;
CREATE TRIGGER soiree_lease_acks_gone AFTER DELETE ON soiree_leases
BEGIN
    DELETE FROM soiree_lease_acks WHERE lease_id = OLD.id;
END;

-- The inbox (`SqlStore::inbox`, `Inbox`): effectively-once side effects of
-- listeners on any store's bus, keyed by that bus's consumer group, the
-- listener and the event id; received_at in Unix milliseconds. IF NOT
-- EXISTS: `Inbox::create_table` may have made it already.
CREATE TABLE IF NOT EXISTS soiree_inbox (
    group_name TEXT NOT NULL,
    listener TEXT NOT NULL,
    event_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (group_name, listener, event_id)
);
