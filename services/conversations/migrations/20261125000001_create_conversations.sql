CREATE TABLE conversations (
    id                  uuid PRIMARY KEY,
    workspace_id        uuid NOT NULL,
    contact_id          uuid NOT NULL,
    channel_id          uuid NOT NULL,
    -- The Contact's id on the channel: where replies are delivered.
    contact_external_id text NOT NULL,
    status              text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'snoozed', 'closed')),
    opened_by           text NOT NULL CHECK (opened_by IN ('contact', 'user', 'workflow')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_message_at     timestamptz NOT NULL DEFAULT now(),
    closed_at           timestamptz
);
-- At most one conversation per contact and channel is not closed.
CREATE UNIQUE INDEX conversations_one_active ON conversations (workspace_id, contact_id, channel_id) WHERE status <> 'closed';
CREATE INDEX conversations_recent ON conversations (workspace_id, last_message_at DESC, id DESC);

CREATE TABLE messages (
    id                  uuid PRIMARY KEY,
    workspace_id        uuid NOT NULL,
    conversation_id     uuid NOT NULL REFERENCES conversations (id),
    channel_id          uuid NOT NULL,
    direction           text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    content             bytea NOT NULL,
    status              text NOT NULL CHECK (status IN ('received', 'pending', 'sent', 'delivered', 'read', 'failed')),
    failure_reason      text NOT NULL DEFAULT '',
    external_message_id text NOT NULL DEFAULT '',
    client_message_id   text,
    sent_at             timestamptz NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
-- An inbound message is stored once, whatever the redeliveries.
CREATE UNIQUE INDEX messages_inbound_once ON messages (workspace_id, channel_id, external_message_id) WHERE direction = 'inbound';
-- A reply retried with the same client id is one message.
CREATE UNIQUE INDEX messages_client_id ON messages (workspace_id, client_message_id) WHERE client_message_id IS NOT NULL;
CREATE INDEX messages_history ON messages (conversation_id, sent_at DESC, id DESC);
