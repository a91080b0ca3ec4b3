-- The log becomes a table partitioned by range of id, so that retention
-- truncates and drops whole partitions (no dead tuples, no vacuum debt)
-- instead of deleting rows.
--
-- * A partitioned table cannot have an identity column (PostgreSQL 15): id
--   takes its default from a sequence, started where the identity stopped,
--   so ids keep increasing across the upgrade.
-- * The existing table is kept as it is (no copy, no index rebuild): it is
--   renamed soiree_events_legacy and attached as the first partition,
--   covering every id handed out so far. max(id) and ATTACH (checking the
--   bound) each read it once, under the ACCESS EXCLUSIVE lock taken below;
--   nothing is rewritten (measured: 240 ms for a million events, 211 MB, in
--   cache). Copying the rows instead would write the whole log again, its
--   indexes and WAL included. Empty (a new database), it is dropped.
-- * The new parent is made LIKE the old table, so that columns, defaults,
--   checks and indexes added by earlier migrations carry over; the old
--   table's indexes are attached to the parent's, not rebuilt. (A unique
--   index on the log must include id, the partition key.)
-- * A DEFAULT partition catches any id that no range partition covers: an
--   insert never fails for lack of a partition. Range partitions are created
--   ahead by the stores that apply retention (see `partition_size`).
LOCK TABLE soiree_events IN ACCESS EXCLUSIVE MODE;

DO $$
DECLARE
    seq text := pg_get_serial_sequence('soiree_events', 'id');
    next_id bigint;
    max_id bigint;
BEGIN
    EXECUTE format(
        'SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM %s', seq)
        INTO next_id;
    SELECT max(id) INTO max_id FROM soiree_events;
    next_id := greatest(next_id, coalesce(max_id + 1, 1));

    ALTER TABLE soiree_events RENAME TO soiree_events_legacy;
    ALTER INDEX soiree_events_pkey RENAME TO soiree_events_legacy_pkey;
    -- Drops the identity's sequence too.
    ALTER TABLE soiree_events_legacy ALTER COLUMN id DROP IDENTITY;

    CREATE SEQUENCE soiree_events_id_seq;
    PERFORM setval('soiree_events_id_seq', next_id, false);

    CREATE TABLE soiree_events (LIKE soiree_events_legacy INCLUDING ALL)
        PARTITION BY RANGE (id);
    ALTER TABLE soiree_events
        ALTER COLUMN id SET DEFAULT nextval('soiree_events_id_seq');
    ALTER SEQUENCE soiree_events_id_seq OWNED BY soiree_events.id;
    CREATE TABLE soiree_events_default PARTITION OF soiree_events DEFAULT;

    IF max_id IS NULL THEN
        DROP TABLE soiree_events_legacy;
    ELSE
        EXECUTE format(
            'ALTER TABLE soiree_events ATTACH PARTITION soiree_events_legacy '
            'FOR VALUES FROM (MINVALUE) TO (%s)', next_id);
    END IF;
END
$$;
