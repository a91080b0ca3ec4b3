-- Events of a lease acknowledged inside a transactional listener's
-- transaction (the listener was the event's last one to run): a lease taken
-- over after its consumer died delivers the rest of its events only. Rows
-- go with their lease.
CREATE TABLE soiree_lease_acks (
    lease_id bigint NOT NULL REFERENCES soiree_leases (id) ON DELETE CASCADE,
    row_id bigint NOT NULL,
    PRIMARY KEY (lease_id, row_id)
);
