-- Incoming webhooks: each workflow's signing secret (`whsec_`), and the webhook ids already
-- taken, so a redelivered webhook starts nothing twice. Receipts outlive the five minutes a
-- signature is accepted for, then are purged.
ALTER TABLE workflows ADD COLUMN webhook_secret text NOT NULL DEFAULT '';
CREATE TABLE webhook_receipts (
    workflow_id uuid NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    webhook_id text NOT NULL,
    run_id uuid,
    skipped text NOT NULL DEFAULT '',
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, webhook_id)
);
CREATE INDEX webhook_receipts_received ON webhook_receipts (received_at);
