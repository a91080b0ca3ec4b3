-- no-transaction
-- The new key of soiree_handled (see 0006), built without blocking writes.
-- CONCURRENTLY cannot run in a transaction, so this file holds this one
-- statement. If the build is interrupted, the index is left invalid; IF NOT
-- EXISTS then skips it on the next run and 0008 rebuilds it.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS soiree_handled_group_key
    ON soiree_handled (event_id, group_name, handler_id);
