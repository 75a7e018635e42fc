-- Events waiting to be published: written in the same transaction as the state change
-- they describe, published by the relay with publisher confirms.
CREATE TABLE platform_outbox (
    id           uuid PRIMARY KEY,
    seq          bigserial NOT NULL,
    routing_key  text NOT NULL,
    body         bytea NOT NULL,
    headers      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX platform_outbox_pending ON platform_outbox (seq) WHERE published_at IS NULL;
CREATE INDEX platform_outbox_published ON platform_outbox (published_at) WHERE published_at IS NOT NULL;

-- Wakes the relay as soon as a transaction that wrote events commits.
CREATE FUNCTION platform_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('platform_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER platform_outbox_notify AFTER INSERT ON platform_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION platform_outbox_notify();
