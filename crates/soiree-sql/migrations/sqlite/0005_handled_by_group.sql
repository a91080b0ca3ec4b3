-- Handler dedup per consumer group: a listener's success counts only for the
-- group that ran it, so two groups with listeners of the same name each run
-- every event. SQLite cannot change a primary key in place, so the table is
-- copied once into one keyed (event_id, group_name, handler_id), in the old
-- key's order (appends to the new B-tree), and renamed.
--
-- Rows written before were not tagged with a group: they are given to the
-- only group that has consumed anything (a cursor that moved), which wrote
-- them all; with several such groups (or none) to the default group
-- `soiree`.
--
-- soiree_results gets a nullable group_name: NULL for results written before.
CREATE TABLE soiree_handled_by_group (
    event_id TEXT NOT NULL,
    group_name TEXT NOT NULL,
    handler_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (event_id, group_name, handler_id)
) WITHOUT ROWID;

INSERT INTO soiree_handled_by_group (event_id, group_name, handler_id, created_at)
SELECT event_id,
       (SELECT CASE WHEN count(*) = 1 THEN min(group_name) ELSE 'soiree' END
          FROM soiree_cursors WHERE claimed_id > 0),
       handler_id, created_at
FROM soiree_handled ORDER BY event_id, handler_id;

DROP TABLE soiree_handled;
ALTER TABLE soiree_handled_by_group RENAME TO soiree_handled;

ALTER TABLE soiree_results ADD COLUMN group_name TEXT;
