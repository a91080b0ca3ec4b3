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
