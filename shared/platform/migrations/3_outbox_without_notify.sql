-- The relay is woken in-process by the writer instead: a transaction that notifies holds
-- a cluster-wide lock through its commit's WAL flush, serialising every writer's commit.
DROP TRIGGER platform_outbox_notify ON platform_outbox;
DROP FUNCTION platform_outbox_notify();
