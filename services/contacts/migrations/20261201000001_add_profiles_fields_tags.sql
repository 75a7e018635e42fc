-- Default Contact Fields, custom values, optimistic version, soft delete and blocking.
ALTER TABLE contacts
    ADD COLUMN email               text NOT NULL DEFAULT '',
    ADD COLUMN phone               text NOT NULL DEFAULT '',
    ADD COLUMN language            text NOT NULL DEFAULT '',
    ADD COLUMN country             text NOT NULL DEFAULT '',
    ADD COLUMN timezone            text NOT NULL DEFAULT '',
    ADD COLUMN picture_url         text NOT NULL DEFAULT '',
    ADD COLUMN last_interaction_at timestamptz,
    ADD COLUMN blocked             boolean NOT NULL DEFAULT false,
    -- Custom field values keyed by the field's key; every value was validated against
    -- its definition when written.
    ADD COLUMN custom              jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN version             bigint NOT NULL DEFAULT 1,
    ADD COLUMN deleted_at          timestamptz;

-- Duplicate suggestions and import upserts look contacts up by normalized email / phone.
CREATE INDEX contacts_email ON contacts (workspace_id, email) WHERE email <> '' AND deleted_at IS NULL;
CREATE INDEX contacts_phone ON contacts (workspace_id, phone) WHERE phone <> '' AND deleted_at IS NULL;
CREATE INDEX contacts_deleted ON contacts (deleted_at) WHERE deleted_at IS NOT NULL;

-- Custom Contact Field definitions of a Workspace.
CREATE TABLE contact_fields (
    workspace_id  uuid NOT NULL,
    key           text NOT NULL,
    label         text NOT NULL,
    description   text NOT NULL DEFAULT '',
    kind          text NOT NULL,
    options       text[] NOT NULL DEFAULT '{}',
    default_value jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, key)
);

CREATE TABLE tags (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    name         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- Tag names are case-insensitively unique in a Workspace.
CREATE UNIQUE INDEX tags_name ON tags (workspace_id, lower(name));

CREATE TABLE contact_tags (
    workspace_id uuid NOT NULL,
    tag_id       uuid NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    contact_id   uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tag_id, contact_id)
);
CREATE INDEX contact_tags_contact ON contact_tags (contact_id);
