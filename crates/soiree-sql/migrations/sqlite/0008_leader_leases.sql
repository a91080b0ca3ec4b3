-- Leader leases (periodic events): one row per name, the current grant's
-- holder and fencing token, its expiry (Unix ms) and the progress the
-- holders record (the last tick fired). A released or lapsed grant keeps
-- its row: the next grant goes on from its token and progress.
CREATE TABLE soiree_leader_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    progress INTEGER
);
