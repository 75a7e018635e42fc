-- A unique index that keeps a caller's value unique is named <table>_<field>_key, so
-- the platform answers its violation with ALREADY_EXISTS naming the field.
ALTER INDEX snippets_shortcut RENAME TO snippets_shortcut_key;
ALTER INDEX inboxes_name RENAME TO inboxes_name_key;
