-- A Workspace's ordered lifecycle stages, and the one each Contact is at ('' for none).
CREATE TABLE lifecycle_stages (
    workspace_id uuid NOT NULL,
    key text NOT NULL,
    name text NOT NULL,
    position int NOT NULL,
    PRIMARY KEY (workspace_id, key)
);

ALTER TABLE contacts ADD COLUMN lifecycle_stage text NOT NULL DEFAULT '';

-- Answers "is any Contact at this stage" before a stage is removed, and stage filters.
CREATE INDEX contacts_lifecycle_stage ON contacts (workspace_id, lifecycle_stage)
    WHERE lifecycle_stage <> '';
