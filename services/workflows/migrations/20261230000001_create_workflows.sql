-- Workflows: a draft and immutable published versions (protobuf-encoded definitions),
-- runs pinned to a version, and every step a run took.
CREATE TABLE workflows (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    draft bytea NOT NULL,
    published_version integer NOT NULL DEFAULT 0,
    -- The published definition's trigger kind, for the trigger consumer's read.
    trigger_kind text,
    enabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflows_workspace ON workflows (workspace_id, id);
CREATE INDEX workflows_triggered ON workflows (workspace_id, trigger_kind) WHERE enabled;

CREATE TABLE workflow_versions (
    workflow_id uuid NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version integer NOT NULL,
    definition bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, version)
);

CREATE TABLE runs (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    workflow_id uuid NOT NULL,
    version integer NOT NULL,
    contact_id uuid NOT NULL,
    conversation_id uuid NOT NULL,
    channel_id uuid NOT NULL,
    -- The text of the message that triggered it, for conditions.
    trigger_text text NOT NULL DEFAULT '',
    state text NOT NULL,
    current_step text NOT NULL,
    -- Steps taken, for the history's order and the step budget.
    step_count integer NOT NULL DEFAULT 0,
    -- Times each jump step was taken.
    jumps jsonb NOT NULL DEFAULT '{}',
    -- When a running or waiting run is due; a claim moves it ahead (its lease).
    wake_at timestamptz NOT NULL DEFAULT now(),
    error text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- At most one active run per workflow and Contact.
CREATE UNIQUE INDEX runs_active_key ON runs (workflow_id, contact_id) WHERE state IN ('running', 'waiting');
CREATE INDEX runs_due ON runs (wake_at) WHERE state IN ('running', 'waiting');
CREATE INDEX runs_of_workflow ON runs (workflow_id, id DESC);
CREATE INDEX runs_of_contact ON runs (contact_id, id DESC);
-- Reentry and once-per-Contact: a Contact's runs of one workflow.
CREATE INDEX runs_of_workflow_contact ON runs (workflow_id, contact_id);

CREATE TABLE run_steps (
    run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq integer NOT NULL,
    step_id text NOT NULL,
    kind text NOT NULL,
    input jsonb NOT NULL,
    output jsonb,
    error text NOT NULL DEFAULT '',
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (run_id, seq)
);
