-- The consumers of each group, by heartbeat: a consumer store records
-- itself every third of its lease timeout, whether or not it holds a lease,
-- and counts as live until expires_at (one lease timeout after its last
-- heartbeat). Inspection lists the live ones; rows expired for a day are
-- deleted by the heartbeats of the group.
CREATE TABLE soiree_consumers (
    group_name text NOT NULL,
    consumer text NOT NULL,
    last_seen timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (group_name, consumer)
);
