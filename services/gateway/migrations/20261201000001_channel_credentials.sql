-- Credentials of every channel type, sealed with AES-256-GCM (gateway.credentials_key);
-- custom channels' plain webhook_secret is sealed into it by the gateway at start.
ALTER TABLE channels
    ADD COLUMN credentials           bytea,
    ADD COLUMN api_base_url          text NOT NULL DEFAULT '',
    ADD COLUMN account_id            text NOT NULL DEFAULT '',
    ADD COLUMN healthy               boolean NOT NULL DEFAULT true,
    ADD COLUMN health_reason         text NOT NULL DEFAULT '',
    ADD COLUMN rate_limit_per_second int NOT NULL DEFAULT 0 CHECK (rate_limit_per_second >= 0),
    ADD COLUMN updated_at            timestamptz NOT NULL DEFAULT now();
ALTER TABLE channels ALTER COLUMN webhook_secret SET DEFAULT '';

-- Receipts (delivered, read) name our sent messages by the provider's id.
ALTER TABLE deliveries ADD COLUMN receipt text NOT NULL DEFAULT '' CHECK (receipt IN ('', 'delivered', 'read', 'failed'));
CREATE INDEX deliveries_external ON deliveries (channel_id, external_message_id) WHERE external_message_id <> '';
CREATE INDEX deliveries_recipient ON deliveries (channel_id, recipient, created_at);
