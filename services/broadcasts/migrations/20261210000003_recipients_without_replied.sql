-- Replies are not counted from every inbound message after all (it slowed the inbound
-- path); the column and its index go until they are counted another way.
DROP INDEX recipients_contact;
ALTER TABLE recipients DROP COLUMN replied_at;
