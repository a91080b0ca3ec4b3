-- The consumers of each group, by heartbeat: a consumer store records
-- itself every third of its lease timeout, whether or not it holds a lease,
-- and counts as live until expires_at (one lease timeout after its last
-- heartbeat; both in Unix milliseconds). Inspection lists the live ones;
-- rows expired for a day are deleted by the heartbeats of the group.
CREATE TABLE soiree_consumers (
    group_name TEXT NOT NULL,
    consumer TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (group_name, consumer)
);
