-- Inspection (soiree::Inspect): lookups and filters go by event id, and a
-- claimed retry row names its consumer so that it shows as pending (NULL
-- while it waits). The log is paged by its rowid, which needs no index.
ALTER TABLE soiree_retries ADD COLUMN consumer TEXT;
CREATE INDEX soiree_events_event_id ON soiree_events (event_id);
CREATE INDEX soiree_results_event_id ON soiree_results (event_id);
CREATE INDEX soiree_dead_letters_event_id ON soiree_dead_letters (group_name, event_id);
