-- Dead letters: intents the relay could not deliver, kept whole so they can be
-- understood and replayed. PostgreSQL flavour; migrations/sqlite has the same
-- columns. Tables are created unqualified so the store can live in any schema
-- (the connection's search_path decides).
--
-- Type choices:
--   id        identity, never reused: replay headers refer to dead letters by id.
--   body      BYTEA: the original AMQP body, byte for byte.
--   headers   JSONB object (AMQP headers + properties).
--   channels  TEXT[]: filter with `$1 = ANY(channels)` or `channels @> ARRAY[$1]`
--             (the GIN index serves the latter).
--   attempts  BIGINT because the Rust side is u32.
--   *_ms      BIGINT unix milliseconds.
--   status    'pending' | 'replayed'; no CHECK, kept in step with SQLite.
--   claimed_by / claimed_at_ms: reserved for the replay feature's claims.
CREATE TABLE IF NOT EXISTS dead_letters (
    id                  BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body                BYTEA   NOT NULL,
    routing_key         TEXT    NOT NULL,
    headers             JSONB   NOT NULL DEFAULT '{}'::jsonb,
    intent_id           TEXT,
    intent_type         TEXT,
    channels            TEXT[]  NOT NULL DEFAULT '{}',
    reason              TEXT    NOT NULL,
    error               TEXT    NOT NULL,
    pusher_status       INTEGER,
    pusher_body         TEXT,
    attempts            BIGINT  NOT NULL DEFAULT 0,
    first_seen_at_ms    BIGINT  NOT NULL,
    dead_lettered_at_ms BIGINT  NOT NULL,
    status              TEXT    NOT NULL DEFAULT 'pending',
    replay_count        BIGINT  NOT NULL DEFAULT 0,
    last_replayed_at_ms BIGINT,
    claimed_by          TEXT,
    claimed_at_ms       BIGINT
);

-- Listing uses keyset pagination on (time, id); the filtered indexes end with
-- the same pair so a filtered list needs no sort.
CREATE INDEX IF NOT EXISTS dead_letters_time_idx
    ON dead_letters (dead_lettered_at_ms, id);
CREATE INDEX IF NOT EXISTS dead_letters_reason_idx
    ON dead_letters (reason, dead_lettered_at_ms, id);
CREATE INDEX IF NOT EXISTS dead_letters_intent_type_idx
    ON dead_letters (intent_type, dead_lettered_at_ms, id);
CREATE INDEX IF NOT EXISTS dead_letters_status_idx
    ON dead_letters (status, dead_lettered_at_ms, id);
CREATE INDEX IF NOT EXISTS dead_letters_intent_id_idx
    ON dead_letters (intent_id);
CREATE INDEX IF NOT EXISTS dead_letters_channels_idx
    ON dead_letters USING GIN (channels);
