-- Ask steps and run variables: a run waiting for the Contact's answer names the ask step
-- (`awaiting`); `deadline` ends that wait, or an assignment's retries; an answer is kept
-- on the run until its next step takes it. Workflows note whether their published version asks, so the triggers queue hears
-- Contacts' messages while one does.
ALTER TABLE runs
    ADD COLUMN variables jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN awaiting text NOT NULL DEFAULT '',
    ADD COLUMN deadline timestamptz,
    ADD COLUMN answer text,
    -- Invalid answers given to the question awaited.
    ADD COLUMN invalid_answers integer NOT NULL DEFAULT 0;
-- A Contact's message finds the active runs of its conversation.
CREATE INDEX runs_active_conversation ON runs (conversation_id) WHERE state IN ('running', 'waiting');
ALTER TABLE workflows ADD COLUMN asks boolean NOT NULL DEFAULT false;
