-- Leader leases (periodic events): one row per name, the current grant's
-- holder and fencing token, its expiry (Unix ms, on the server's clock)
-- and the progress the holders record (the last tick fired). A released
-- or lapsed grant keeps its row: the next grant goes on from its token and
-- progress.
CREATE TABLE soiree_leader_leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    token bigint NOT NULL,
    expires_ms bigint NOT NULL,
    progress bigint
);
