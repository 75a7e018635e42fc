-- The W3C trace context (traceparent, tracestate) of the request a delivery was queued
-- for: each attempt, the provider call and the status it reports continue that trace,
-- however long after the request the attempt runs.
ALTER TABLE deliveries ADD COLUMN trace jsonb NOT NULL DEFAULT '{}';
