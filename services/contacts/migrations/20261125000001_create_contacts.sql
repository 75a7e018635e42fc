CREATE TABLE contacts (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    first_name   text NOT NULL DEFAULT '',
    last_name    text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_workspace_newest ON contacts (workspace_id, id DESC);

-- One row per (channel, external id): the key ResolveContact finds a person by.
CREATE TABLE channel_identities (
    workspace_id uuid NOT NULL,
    channel_id   uuid NOT NULL,
    external_id  text NOT NULL,
    contact_id   uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    display_name text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, channel_id, external_id)
);
CREATE INDEX channel_identities_contact ON channel_identities (contact_id);
