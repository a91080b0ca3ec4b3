-- The key of soiree_handled becomes (event_id, group_name, handler_id): the
-- index built by 0007 replaces the old primary key (event_id, handler_id),
-- which would make a second group's success a conflict. Catalog changes
-- only, unless 0007 was interrupted and left its index invalid: it is then
-- rebuilt here (blocking writes to soiree_handled meanwhile).
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_index
        WHERE indexrelid = to_regclass('soiree_handled_group_key') AND NOT indisvalid
    ) THEN
        REINDEX INDEX soiree_handled_group_key;
    END IF;
END
$$;
ALTER TABLE soiree_handled DROP CONSTRAINT soiree_handled_pkey;
ALTER TABLE soiree_handled
    ADD CONSTRAINT soiree_handled_pkey PRIMARY KEY USING INDEX soiree_handled_group_key;
