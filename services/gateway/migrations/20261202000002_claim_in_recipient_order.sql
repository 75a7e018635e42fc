-- Deliveries are claimed in the order a recipient's messages must leave in (created_at,
-- message_id within one due time), so a claim meets a recipient's later messages only
-- after its earlier one; in due-time order alone it walked every blocked message first.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, created_at, message_id)
    WHERE status IN ('queued', 'sending');
-- The earlier-message check reads only a recipient's pending messages, not their history.
CREATE INDEX deliveries_pending_recipient ON deliveries (channel_id, recipient, created_at, message_id)
    WHERE status IN ('queued', 'sending');
