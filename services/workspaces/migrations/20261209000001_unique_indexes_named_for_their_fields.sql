-- A unique index that keeps a caller's value unique is named <table>_<field>_key, so
-- the platform answers its violation with ALREADY_EXISTS naming the field.
ALTER INDEX users_active_email RENAME TO users_email_key;
ALTER INDEX teams_name RENAME TO teams_name_key;
