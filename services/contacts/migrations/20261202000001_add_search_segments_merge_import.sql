-- Search: every filter is confined to one Workspace's live Contacts, so the indexes that
-- serve it start with workspace_id and skip deleted rows; each sort order ends with id so
-- keyset pages are stable.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE contacts
    -- Sort key and prefix-search key of the name; byte order ("C") so one btree serves
    -- both ORDER BY and LIKE 'prefix%'.
    ADD COLUMN name_key text COLLATE "C"
        GENERATED ALWAYS AS (lower(btrim(first_name || ' ' || last_name))) STORED,
    -- What free-text search looks in: name, email and phone.
    ADD COLUMN search_text text
        GENERATED ALWAYS AS (lower(first_name || ' ' || last_name || ' ' || email || ' ' || phone)) STORED,
    -- Set on a Contact merged into another; such a Contact cannot be restored.
    ADD COLUMN merged_into uuid;

CREATE INDEX contacts_live_created ON contacts (workspace_id, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX contacts_live_updated ON contacts (workspace_id, updated_at, id) WHERE deleted_at IS NULL;
CREATE INDEX contacts_live_name ON contacts (workspace_id, name_key, id) WHERE deleted_at IS NULL;
CREATE INDEX contacts_live_interaction ON contacts
    (workspace_id, (coalesce(last_interaction_at, '-infinity'::timestamptz)), id) WHERE deleted_at IS NULL;
CREATE INDEX contacts_live_id ON contacts (workspace_id, id) WHERE deleted_at IS NULL;
-- The ids of the Contact's Tags, kept equal to its contact_tags rows by a trigger, so a
-- tag condition is one more GIN bitmap that Postgres ANDs with the other conditions'
-- instead of a semi-join probed row by row.
ALTER TABLE contacts ADD COLUMN tag_ids uuid[] NOT NULL DEFAULT '{}';
UPDATE contacts c SET tag_ids = t.ids
FROM (SELECT contact_id, array_agg(tag_id) AS ids FROM contact_tags GROUP BY contact_id) t
WHERE t.contact_id = c.id;
CREATE INDEX contacts_tag_ids ON contacts USING gin (tag_ids);

CREATE FUNCTION contact_tags_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE contacts SET tag_ids = array_append(tag_ids, NEW.tag_id)
        WHERE id = NEW.contact_id AND NOT tag_ids @> ARRAY[NEW.tag_id];
    ELSE
        UPDATE contacts SET tag_ids = array_remove(tag_ids, OLD.tag_id)
        WHERE id = OLD.contact_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER contact_tags_sync AFTER INSERT OR DELETE ON contact_tags
    FOR EACH ROW EXECUTE FUNCTION contact_tags_sync();

-- Containment (custom @> '{"plan":"pro"}') for equality on custom fields.
CREATE INDEX contacts_custom ON contacts USING gin (custom jsonb_path_ops);
-- Substring search over name, email and phone.
CREATE INDEX contacts_search_text ON contacts USING gin (search_text gin_trgm_ops);

-- Saved filters.
CREATE TABLE segments (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    name         text NOT NULL,
    -- An encoded ism.contacts.v1.Filter, checked against the field definitions on use.
    filter       bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX segments_name ON segments (workspace_id, lower(name));
CREATE INDEX segments_listing ON segments (workspace_id, name, id);

-- The outcome of each CSV import, kept with its error report for 30 days.
CREATE TABLE contact_imports (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    rows         bigint NOT NULL,
    created      bigint NOT NULL,
    updated      bigint NOT NULL,
    failed       bigint NOT NULL,
    error_report bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contact_imports_created ON contact_imports (created_at);
