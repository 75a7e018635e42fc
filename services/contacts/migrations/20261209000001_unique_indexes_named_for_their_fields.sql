-- A unique index that keeps a caller's value unique is named <table>_<field>_key, so
-- the platform answers its violation with ALREADY_EXISTS naming the field.
ALTER INDEX tags_name RENAME TO tags_name_key;
ALTER INDEX segments_name RENAME TO segments_name_key;
