-- Handler dedup per consumer group: a listener's success counts only for the
-- group that ran it, so two groups with listeners of the same name each run
-- every event. soiree_handled gets a group_name and its key becomes
-- (event_id, group_name, handler_id), in three steps that never rewrite the
-- table nor block writes while an index is built:
--
-- 0006 (this one) adds the column. Adding a NOT NULL column with a constant
--   default only records the default in the catalog (PostgreSQL 11+): no
--   row is rewritten, however big the table.
-- 0007 builds the new key's unique index CONCURRENTLY (outside a
--   transaction): writers go on meanwhile.
-- 0008 swaps the primary key to that index: catalog changes only.
--
-- Rows written before were not tagged with a group: they are given to the
-- only group that has consumed anything (a cursor that moved), which wrote
-- them all; with several such groups (or none) to the default group
-- `soiree`. That value stays the column's default, so a writer that names no
-- group (an older soiree during a rolling upgrade) writes for it too.
--
-- soiree_results gets a nullable group_name: NULL for results written
-- before (also a catalog change only).
DO $$
DECLARE
    legacy text;
BEGIN
    SELECT CASE WHEN count(*) = 1 THEN min(group_name) ELSE 'soiree' END
        INTO legacy
        FROM soiree_cursors WHERE claimed_id > 0;
    EXECUTE format(
        'ALTER TABLE soiree_handled ADD COLUMN group_name text NOT NULL DEFAULT %L', legacy);
END
$$;
ALTER TABLE soiree_results ADD COLUMN group_name text;
