-- The parked log: intents of hot channels, taken out of the intent queue's
-- prefetch window so that the window keeps serving every other channel (see
-- src/relay/parking.rs). A row is committed before its delivery is acked
-- from the queue, and deleted once its event is delivered or dead-lettered.
-- migrations/sqlite has the same table.
--
--   seq       the log's order: rows of one group are read back by seq, which
--             is the order they arrived in; a sequence, so a seq is never
--             reused while a worker may hold it in memory.
--   log       the consumed queue the intent came from (with competing
--             consumers also the worker's host name): whoever consumes that
--             queue owns its rows.
--   grp       the parked group: a hot channel, joined by every channel a
--             multi-channel intent ties to it, so that one ordered read serves
--             them all.
--   channels  JSON array: the intent's channels, which rebuild the parked set
--             at start.
--   intent_id '' when the intent has none; otherwise unique per log, so that
--             the redelivery of an intent parked just before a crash (stored,
--             not yet acked) adds nothing.
CREATE TABLE IF NOT EXISTS parked_intents (
    seq              BIGSERIAL PRIMARY KEY,
    log              TEXT    NOT NULL,
    grp              TEXT    NOT NULL,
    intent_id        TEXT    NOT NULL,
    channels         TEXT    NOT NULL,
    body             BYTEA   NOT NULL,
    routing_key      TEXT    NOT NULL,
    headers          TEXT    NOT NULL,
    enqueued_at_ms   BIGINT,
    first_seen_at_ms BIGINT  NOT NULL,
    parked_at_ms     BIGINT  NOT NULL,
    replay_of        BIGINT
);
CREATE INDEX IF NOT EXISTS parked_intents_read_idx ON parked_intents (log, grp, seq);
CREATE UNIQUE INDEX IF NOT EXISTS parked_intents_once_idx
    ON parked_intents (log, intent_id) WHERE intent_id <> '';
