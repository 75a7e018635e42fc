-- When a recipient first wrote to the channel after the broadcast.
ALTER TABLE recipients ADD COLUMN replied_at timestamptz;
-- A Contact's message finds the recipients it answers.
CREATE INDEX recipients_contact ON recipients (contact_id) WHERE replied_at IS NULL;
