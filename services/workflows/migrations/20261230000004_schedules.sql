-- Scheduled workflows: when each fires next, and how far through its Segment the current
-- firing is (the last Contact id taken), so a restart goes on where it stopped.
CREATE TABLE schedules (
    workflow_id uuid PRIMARY KEY REFERENCES workflows (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL,
    due_at timestamptz NOT NULL,
    after_id text NOT NULL DEFAULT ''
);
CREATE INDEX schedules_due ON schedules (due_at);
