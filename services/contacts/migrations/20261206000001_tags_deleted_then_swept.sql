-- Deleting a Tag removed it from every Contact holding it inside the DeleteTag call: each
-- removal rewrites the Contact's index entries (`tag_ids` is in the filter index), about
-- 220 microseconds a Contact, so a Tag on 40,000 Contacts took 9 seconds and one on
-- more than about 120,000 outlasted the call's 30-second timeout and rolled back. The
-- Tag row now goes at once, and its `contact_tags` rows are swept in small batches
-- afterwards. Until then they point at no Tag: every read reaches Tags through `tags`,
-- so they are never shown, counted or matched.
ALTER TABLE contact_tags DROP CONSTRAINT contact_tags_tag_id_fkey;

-- Deleted Tags whose contact_tags rows are still being swept.
CREATE TABLE tag_sweeps (
    tag_id       uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    deleted_at   timestamptz NOT NULL DEFAULT now()
);
