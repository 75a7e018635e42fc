-- Interaction times move far more often than anything else about a Contact: about once a
-- minute per active person. Written into `contacts`, each move was a new row version in
-- every index of the table, the two GIN indexes included. Their sort index now lives in a
-- narrow table of its own, one row per Contact, so the time is no longer indexed in
-- `contacts` and its update stays on the row's page (a HOT update) without touching any
-- of the table's indexes; see ADR 16. `contacts.last_interaction_at` stays the value
-- read and filtered on.
CREATE TABLE contact_activity (
    contact_id          uuid PRIMARY KEY,
    workspace_id        uuid NOT NULL,
    last_interaction_at timestamptz
);
INSERT INTO contact_activity (contact_id, workspace_id, last_interaction_at)
SELECT id, workspace_id, last_interaction_at FROM contacts;
CREATE INDEX contact_activity_order ON contact_activity
    (workspace_id, (coalesce(last_interaction_at, '-infinity'::timestamptz)), contact_id);
DROP INDEX contacts_live_interaction;
-- Room on each page for the updated row version.
ALTER TABLE contacts SET (fillfactor = 90);

-- Kept equal to `contacts` by triggers: set-wise for inserts and deletes (an import adds
-- thousands of Contacts per statement), row by row for the few rows whose time moved.
CREATE FUNCTION contact_activity_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_activity (contact_id, workspace_id, last_interaction_at)
    SELECT id, workspace_id, last_interaction_at FROM added;
    RETURN NULL;
END $$;
CREATE TRIGGER contact_activity_add AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION contact_activity_add();

CREATE FUNCTION contact_activity_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE contact_activity SET last_interaction_at = NEW.last_interaction_at
    WHERE contact_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER contact_activity_move AFTER UPDATE OF last_interaction_at ON contacts
    FOR EACH ROW WHEN (NEW.last_interaction_at IS DISTINCT FROM OLD.last_interaction_at)
    EXECUTE FUNCTION contact_activity_move();

CREATE FUNCTION contact_activity_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact_activity a USING removed r WHERE a.contact_id = r.id;
    RETURN NULL;
END $$;
CREATE TRIGGER contact_activity_remove AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION contact_activity_remove();
