-- One GIN index over what most filters combine: Tags, custom values and the name's
-- first characters. Postgres intersects the conditions on its columns inside one index
-- scan, skipping ahead in the longer posting lists, where a BitmapAnd of one index per
-- condition read every entry of each (200,000 for a select value at 1M Contacts); see
-- ADR 14. A multicolumn GIN index serves each of its columns alone as well, so it
-- replaces the single-column ones.
ALTER TABLE contacts ADD COLUMN name_prefixes text[] GENERATED ALWAYS AS (ARRAY[
    left(lower(btrim(first_name || ' ' || last_name)), 1),
    left(lower(btrim(first_name || ' ' || last_name)), 2),
    left(lower(btrim(first_name || ' ' || last_name)), 3)]) STORED;
CREATE INDEX contacts_filter ON contacts USING gin (tag_ids, custom jsonb_path_ops, name_prefixes);
DROP INDEX contacts_tag_ids;
DROP INDEX contacts_custom;
