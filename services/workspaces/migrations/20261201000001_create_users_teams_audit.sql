ALTER TABLE workspaces
    ADD COLUMN default_language text NOT NULL DEFAULT 'en',
    ADD COLUMN business_hours   jsonb NOT NULL DEFAULT '[]';

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    workspace_id   uuid NOT NULL REFERENCES workspaces (id),
    email          text NOT NULL,
    display_name   text NOT NULL,
    role           text NOT NULL CHECK (role IN ('owner', 'manager', 'agent')),
    availability   text NOT NULL DEFAULT 'offline' CHECK (availability IN ('online', 'away', 'offline')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    deactivated_at timestamptz
);
-- A deactivated User frees their email for a new invitation.
CREATE UNIQUE INDEX users_active_email ON users (workspace_id, lower(email)) WHERE deactivated_at IS NULL;
CREATE INDEX users_workspace ON users (workspace_id, id);

CREATE TABLE teams (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id),
    name         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX teams_name ON teams (workspace_id, lower(name));
CREATE INDEX teams_workspace ON teams (workspace_id, id);

CREATE TABLE team_members (
    team_id  uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id  uuid NOT NULL REFERENCES users (id),
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id, team_id);

-- Append-only record of administrative actions.
CREATE TABLE audit_events (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id),
    actor        text NOT NULL,
    action       text NOT NULL,
    target       text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}',
    occurred_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, id DESC);
