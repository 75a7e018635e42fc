CREATE TABLE channels (
    id             uuid PRIMARY KEY,
    workspace_id   uuid NOT NULL,
    type           text NOT NULL,
    name           text NOT NULL,
    outbound_url   text NOT NULL DEFAULT '',
    webhook_secret text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);
CREATE INDEX channels_workspace ON channels (workspace_id, id);

-- Every accepted inbound message, once: the provider's id is the dedupe key.
CREATE TABLE inbound_messages (
    id                  uuid PRIMARY KEY,
    workspace_id        uuid NOT NULL,
    channel_id          uuid NOT NULL REFERENCES channels (id),
    external_message_id text NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel_id, external_message_id)
);

-- Outbound messages other services asked us to deliver, keyed by their message id.
CREATE TABLE deliveries (
    message_id          uuid PRIMARY KEY,
    workspace_id        uuid NOT NULL,
    channel_id          uuid NOT NULL REFERENCES channels (id),
    requested_by        text NOT NULL,
    recipient           text NOT NULL,
    content             bytea NOT NULL,
    status              text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    attempts            int NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    locked_until        timestamptz,
    last_error          text NOT NULL DEFAULT '',
    external_message_id text NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('queued', 'sending');
