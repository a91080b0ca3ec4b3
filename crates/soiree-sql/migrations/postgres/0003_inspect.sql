-- Inspection (soiree::Inspect): listings page the log by id, lookups and
-- filters go by event id, and a claimed retry row names its consumer so that
-- it shows as pending (NULL while it waits).
ALTER TABLE soiree_retries ADD COLUMN consumer text;
CREATE INDEX soiree_events_id ON soiree_events (id);
CREATE INDEX soiree_events_event_id ON soiree_events (event_id);
CREATE INDEX soiree_results_event_id ON soiree_results (event_id);
CREATE INDEX soiree_dead_letters_event_id ON soiree_dead_letters (group_name, event_id);
