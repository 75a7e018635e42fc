-- Bots: a backend (sealed, with its secrets) answering the Contacts of some Channels, the
-- conversations each answers until a human takes over, and each Contact message to answer.
CREATE TABLE bots (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    name text NOT NULL,
    channel_ids uuid[] NOT NULL DEFAULT '{}',
    kind text NOT NULL,
    -- The backend's settings and secrets, sealed (ism_platform::sealing).
    backend bytea NOT NULL,
    timeout_ms integer NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    last_error text NOT NULL DEFAULT '',
    last_error_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bots_workspace ON bots (workspace_id, id);

CREATE TABLE bot_sessions (
    conversation_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    bot_id uuid NOT NULL,
    state text NOT NULL,
    reason text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bot_turns (
    message_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    conversation_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    channel_id uuid NOT NULL,
    bot_id uuid NOT NULL,
    text text NOT NULL,
    state text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    -- Also a claim's lease, as for webhook deliveries.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bot_turns_due ON bot_turns (next_attempt_at) WHERE state = 'pending';
CREATE INDEX bot_turns_conversation ON bot_turns (conversation_id, created_at) WHERE state = 'pending';
