-- `contacts.tag_ids` is now kept once per statement, not once per `contact_tags` row. Row
-- by row, every Tag placed on a Contact wrote a new version of the Contact and, since
-- `tag_ids` is in the filter index, new entries in every one of its indexes: adding 50
-- Tags to 1,000 Contacts wrote each Contact 50 times, and an imported row with three
-- Tags was written four times. Once a statement, each Contact is written once with all
-- of the statement's Tags, and not at all when it already holds them (an import sets
-- the `tag_ids` of the Contacts it creates). `= ANY` keeps the UPDATE to primary key
-- probes in id order, so two statements lock the Contacts they share in the same order.
-- See ADR 20.
DROP TRIGGER contact_tags_sync ON contact_tags;
DROP FUNCTION contact_tags_sync();

CREATE FUNCTION contact_tags_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH added AS (
        SELECT contact_id, array_agg(tag_id) AS ids FROM added_rows GROUP BY contact_id)
    UPDATE contacts c
    SET tag_ids = c.tag_ids || ARRAY(SELECT t FROM unnest(a.ids) AS t WHERE t <> ALL(c.tag_ids))
    FROM added a
    WHERE c.id = ANY(ARRAY(SELECT contact_id FROM added)) AND c.id = a.contact_id
      AND NOT c.tag_ids @> a.ids;
    RETURN NULL;
END $$;
CREATE TRIGGER contact_tags_added AFTER INSERT ON contact_tags
    REFERENCING NEW TABLE AS added_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_tags_added();

CREATE FUNCTION contact_tags_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH removed AS (
        SELECT contact_id, array_agg(tag_id) AS ids FROM removed_rows GROUP BY contact_id)
    UPDATE contacts c
    SET tag_ids = ARRAY(SELECT t FROM unnest(c.tag_ids) WITH ORDINALITY AS u(t, n)
                        WHERE t <> ALL(r.ids) ORDER BY n)
    FROM removed r
    WHERE c.id = ANY(ARRAY(SELECT contact_id FROM removed)) AND c.id = r.contact_id
      AND c.tag_ids && r.ids;
    RETURN NULL;
END $$;
CREATE TRIGGER contact_tags_removed AFTER DELETE ON contact_tags
    REFERENCING OLD TABLE AS removed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_tags_removed();
