-- A pending outbound message being retried by the gateway shows when its next attempt
-- is due and why the last one failed.
ALTER TABLE messages ADD COLUMN next_attempt_at timestamptz, ADD COLUMN retry_reason text NOT NULL DEFAULT '';
