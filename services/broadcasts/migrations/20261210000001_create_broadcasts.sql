-- A broadcast: its definition (audience and content as their protobuf encodings, read
-- only by this service), its state and the resume point of its audience freeze.
CREATE TABLE broadcasts (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    name text NOT NULL,
    channel_id uuid NOT NULL,
    audience bytea NOT NULL,
    content bytea NOT NULL,
    labels text[] NOT NULL DEFAULT '{}',
    state text NOT NULL,
    state_reason text NOT NULL DEFAULT '',
    send_at timestamptz,
    missed_schedule text NOT NULL DEFAULT 'send_late',
    -- The last Contact id frozen into recipients; the freeze resumes after it.
    frozen_after uuid,
    audience_frozen boolean NOT NULL DEFAULT false,
    -- Whoever freezes the audience holds the lease; another replica takes over once it
    -- expires.
    lease_owner uuid,
    lease_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    ended_at timestamptz
);

-- Ids are UUIDv7: newest first is id order.
CREATE INDEX broadcasts_workspace_newest ON broadcasts (workspace_id, id DESC);
CREATE INDEX broadcasts_due ON broadcasts (send_at) WHERE state = 'scheduled';
CREATE INDEX broadcasts_running ON broadcasts (id) WHERE state = 'running';

-- One row per Contact of a broadcast's frozen audience. `id` is the message id the
-- gateway delivers at most once.
CREATE TABLE recipients (
    broadcast_id uuid NOT NULL REFERENCES broadcasts ON DELETE CASCADE,
    contact_id uuid NOT NULL,
    id uuid NOT NULL,
    status text NOT NULL,
    reason text NOT NULL DEFAULT '',
    external_id text NOT NULL DEFAULT '',
    -- The personalised content, when the broadcast's names variables.
    content bytea,
    external_message_id text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (broadcast_id, contact_id)
);

CREATE UNIQUE INDEX recipients_id_key ON recipients (id);
CREATE INDEX recipients_pending ON recipients (broadcast_id, contact_id) WHERE status = 'pending';
CREATE INDEX recipients_queued ON recipients (broadcast_id) WHERE status = 'queued';
-- Stats: counted from the index alone.
CREATE INDEX recipients_outcomes ON recipients (broadcast_id, status, reason);
