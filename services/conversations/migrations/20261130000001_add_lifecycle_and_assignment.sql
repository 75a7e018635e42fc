-- Lifecycle, assignment, closing notes and per-conversation metrics.
ALTER TABLE conversations
    ADD COLUMN channel_type      integer NOT NULL DEFAULT 0,
    -- Who opened it: the Contact's, the User's or the workflow's id.
    ADD COLUMN opened_by_id      text NOT NULL DEFAULT '',
    ADD COLUMN snoozed_until     timestamptz,
    ADD COLUMN assignee_user_id  uuid,
    ADD COLUMN assignee_team_id  uuid,
    ADD COLUMN closing_category  text NOT NULL DEFAULT '',
    ADD COLUMN closing_summary   text NOT NULL DEFAULT '',
    -- `user:<id>`, `auto_close` or `workflow`.
    ADD COLUMN closed_by         text NOT NULL DEFAULT '',
    -- The first User reply; bot, workflow and broadcast messages are not responses.
    ADD COLUMN first_response_at timestamptz,
    ADD COLUMN response_count    integer NOT NULL DEFAULT 0,
    -- contact, user, workflow, bot or broadcast.
    ADD COLUMN last_message_from text NOT NULL DEFAULT 'contact',
    -- Since when the Contact waits for a User's reply; NULL once answered.
    ADD COLUMN waiting_since     timestamptz;
ALTER TABLE conversations DROP CONSTRAINT conversations_opened_by_check;
ALTER TABLE conversations ADD CONSTRAINT conversations_opened_by_check
    CHECK (opened_by IN ('contact', 'user', 'workflow', 'bot', 'broadcast'));
UPDATE conversations SET opened_by_id = contact_id::text, waiting_since = created_at;

CREATE INDEX conversations_backlog ON conversations (workspace_id, created_at)
    WHERE status = 'open' AND assignee_user_id IS NULL;
CREATE INDEX conversations_by_contact ON conversations (workspace_id, contact_id);

ALTER TABLE messages DROP CONSTRAINT messages_direction_check;
ALTER TABLE messages ADD CONSTRAINT messages_direction_check
    CHECK (direction IN ('inbound', 'outbound', 'internal'));
-- Internal comments have no delivery status: 'none'.
ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('none', 'received', 'pending', 'sent', 'delivered', 'read', 'failed'));
ALTER TABLE messages
    ADD COLUMN sender    text NOT NULL DEFAULT 'contact'
        CHECK (sender IN ('contact', 'user', 'workflow', 'bot', 'broadcast')),
    -- The User's id, the workflow's id...; empty for the Contact.
    ADD COLUMN sender_id text NOT NULL DEFAULT '',
    -- Users mentioned in an internal comment.
    ADD COLUMN mentions  uuid[] NOT NULL DEFAULT '{}';
UPDATE messages SET sender = 'user' WHERE direction = 'outbound';

-- What each Workspace chose; a missing row means every default.
CREATE TABLE workspace_settings (
    workspace_id            uuid PRIMARY KEY,
    -- Close after this long without activity once a User replied: 30 minutes to 14 days.
    auto_close_minutes      integer NOT NULL DEFAULT 1440 CHECK (auto_close_minutes BETWEEN 30 AND 20160),
    closing_notes           text NOT NULL DEFAULT 'off'
        CHECK (closing_notes IN ('off', 'optional', 'category_required', 'both_required')),
    closing_categories      text[] NOT NULL DEFAULT '{}',
    reply_to_closed         boolean NOT NULL DEFAULT true,
    auto_assign             text NOT NULL DEFAULT 'off' CHECK (auto_assign IN ('off', 'round_robin', 'least_open')),
    auto_assign_team_id     uuid,
    auto_assign_online_only boolean NOT NULL DEFAULT true,
    -- Most open conversations per User; 0 is no cap.
    auto_assign_cap         integer NOT NULL DEFAULT 0 CHECK (auto_assign_cap >= 0)
);

-- Durable timers: snooze wake-ups and auto-close, polled with SKIP LOCKED.
CREATE TABLE conversation_timers (
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    kind            text NOT NULL CHECK (kind IN ('wake', 'auto_close')),
    workspace_id    uuid NOT NULL,
    due_at          timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, kind)
);
CREATE INDEX conversation_timers_due ON conversation_timers (due_at);

-- Each User's not-closed assigned conversations, kept by a trigger so that a decision
-- locks one row per candidate instead of counting.
CREATE TABLE agent_load (
    workspace_id uuid NOT NULL,
    user_id      uuid NOT NULL,
    open_count   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, user_id)
);

-- Round-robin position per pool (a Team, or the Workspace); its row lock serializes a
-- pool's decisions.
CREATE TABLE assignment_cursors (
    workspace_id uuid NOT NULL,
    pool         text NOT NULL,
    last_user_id uuid,
    PRIMARY KEY (workspace_id, pool)
);

CREATE FUNCTION track_agent_load() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.assignee_user_id IS NOT NULL AND OLD.status <> 'closed' THEN
        UPDATE agent_load SET open_count = open_count - 1
        WHERE workspace_id = OLD.workspace_id AND user_id = OLD.assignee_user_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.assignee_user_id IS NOT NULL AND NEW.status <> 'closed' THEN
        INSERT INTO agent_load (workspace_id, user_id, open_count)
        VALUES (NEW.workspace_id, NEW.assignee_user_id, 1)
        ON CONFLICT (workspace_id, user_id) DO UPDATE SET open_count = agent_load.open_count + 1;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER conversations_agent_load_insert AFTER INSERT OR DELETE ON conversations
    FOR EACH ROW EXECUTE FUNCTION track_agent_load();
CREATE TRIGGER conversations_agent_load_update AFTER UPDATE ON conversations
    FOR EACH ROW
    WHEN (OLD.assignee_user_id IS DISTINCT FROM NEW.assignee_user_id
          OR (OLD.status = 'closed') <> (NEW.status = 'closed'))
    EXECUTE FUNCTION track_agent_load();
