-- The delivered log: a hash of each intent id the relay delivered lately,
-- so that a worker restarted after a crash knows what it sent but had not
-- acked yet, and acks its redelivery instead of sending it again (see
-- src/relay/dedup.rs). Kept to the newest RELAY_DEDUP_CAPACITY rows.
-- migrations/sqlite has the same table.
--
--   id_hash          64 bits of SHA-256 of the intent id, as a signed integer.
--   delivered_at_ms  when Pusher accepted it; the newest rows are kept.
CREATE TABLE IF NOT EXISTS delivered_intents (
    id_hash          BIGINT NOT NULL PRIMARY KEY,
    delivered_at_ms  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS delivered_intents_at_idx ON delivered_intents (delivered_at_ms);
