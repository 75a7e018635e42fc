-- Canned replies with variables, shared with the Workspace or personal to their owner.
CREATE TABLE snippets (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    -- The owner's subject (`user:<id>`, `api_key:<id>`) for a personal snippet; NULL when shared.
    owner        text,
    shortcut     text NOT NULL,
    title        text NOT NULL,
    body         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- A shortcut names one snippet per scope (shared, or one owner's).
CREATE UNIQUE INDEX snippets_shortcut ON snippets (workspace_id, coalesce(owner, ''), lower(shortcut));
CREATE INDEX snippets_search ON snippets (workspace_id, lower(shortcut) text_pattern_ops);
