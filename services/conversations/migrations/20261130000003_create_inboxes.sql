-- Custom Inboxes: named views over the Workspace's conversations.
CREATE TABLE inboxes (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    name         text NOT NULL,
    -- ism.conversations.v1.InboxConditions, validated when saved.
    conditions   bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX inboxes_name ON inboxes (workspace_id, lower(name));

-- The built-in views' first pages: by status, and by assignee.
CREATE INDEX conversations_by_status ON conversations (workspace_id, status, last_message_at DESC, id DESC);
CREATE INDEX conversations_by_assignee ON conversations (workspace_id, assignee_user_id, last_message_at DESC, id DESC);
