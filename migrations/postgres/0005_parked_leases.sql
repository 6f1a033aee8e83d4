-- Leases on competing workers' parked logs, so that no log outlives its
-- worker unread (see src/relay/session/parked.rs). A worker renews its
-- log's lease every few seconds; any live worker of the same queue adopts a
-- log whose lease has run out (RELAY_PARKED_LEASE) by deleting the lease
-- and moving its rows into its own log, in one transaction. A log with rows
-- and no lease at all (written before leases existed) is adoptable at once.
-- A single-active queue's log is its queue's alone and takes no lease.
-- migrations/sqlite has the same table.
--
--   log            the parked log's name: {queue}@{host}.
--   queue          the consumed queue: only its own workers adopt the log.
--   renewed_at_ms  the owner's last renewal.
CREATE TABLE IF NOT EXISTS parked_leases (
    log            TEXT   NOT NULL PRIMARY KEY,
    queue          TEXT   NOT NULL,
    renewed_at_ms  BIGINT NOT NULL
);
