-- Events a consumer has already applied, so a redelivery changes nothing.
CREATE TABLE platform_inbox (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX platform_inbox_processed_at ON platform_inbox (processed_at);
