-- Outgoing event webhooks: endpoints, the events they receive (each body stored once),
-- one delivery per event and endpoint, and every attempt of a delivery.
CREATE TABLE webhook_endpoints (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    url text NOT NULL,
    description text NOT NULL DEFAULT '',
    event_types text[] NOT NULL,
    channel_ids uuid[] NOT NULL DEFAULT '{}',
    tags text[] NOT NULL DEFAULT '{}',
    ordered boolean NOT NULL DEFAULT false,
    rate_limit_per_second integer NOT NULL DEFAULT 0,
    -- The signing secret(s), sealed (ism_platform::sealing) under integrations.secrets_key.
    secret bytea NOT NULL,
    previous_secret bytea,
    previous_secret_until timestamptz,
    enabled boolean NOT NULL DEFAULT true,
    disabled_reason text NOT NULL DEFAULT '',
    failing_since timestamptz,
    warned_at timestamptz,
    last_error text NOT NULL DEFAULT '',
    last_success_at timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0,
    -- The circuit is open: nothing is attempted before this.
    resting_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_workspace ON webhook_endpoints (workspace_id, id);

CREATE TABLE webhook_events (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    event_type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    -- The exact bytes POSTed (what the signature covers).
    body text NOT NULL
);

CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY,
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id uuid NOT NULL REFERENCES webhook_events (id),
    event_type text NOT NULL,
    state text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    -- When a pending delivery may next be attempted (also pushed forward by a claim,
    -- which is the claimer's lease).
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_event_key UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
-- An ordered endpoint's next delivery: its pending one of the earliest event (event ids
-- are UUIDv7, ordered by when the event happened).
CREATE INDEX webhook_deliveries_endpoint_pending ON webhook_deliveries (endpoint_id, event_id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, id DESC);

CREATE TABLE webhook_attempts (
    delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    number integer NOT NULL,
    started_at timestamptz NOT NULL,
    duration_ms bigint NOT NULL,
    status_code integer NOT NULL,
    error text NOT NULL,
    response_body text NOT NULL,
    PRIMARY KEY (delivery_id, number)
);
