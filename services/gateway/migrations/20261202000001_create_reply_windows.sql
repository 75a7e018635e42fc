-- When each Contact last wrote on each channel: Meta and WhatsApp only let a business
-- answer freely within 24 hours of it, so sends outside it are refused before the call.
CREATE TABLE reply_windows (
    channel_id      uuid NOT NULL REFERENCES channels (id),
    contact         text NOT NULL,
    last_inbound_at timestamptz NOT NULL,
    PRIMARY KEY (channel_id, contact)
);
