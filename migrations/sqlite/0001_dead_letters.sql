-- Dead letters: intents the relay could not deliver, kept whole so they can be
-- understood and replayed. SQLite flavour; migrations/postgres has the same
-- columns.
--
-- Type choices:
--   id        INTEGER PRIMARY KEY AUTOINCREMENT: AUTOINCREMENT so an id is never
--             reused after a purge, because replay headers and operator notes
--             refer to dead letters by id.
--   body      BLOB: the original AMQP body, byte for byte (need not be UTF-8).
--   headers   TEXT holding a JSON object (AMQP headers + properties).
--   channels  TEXT holding a JSON array of strings; filter with json_each().
--   *_ms      INTEGER (64-bit): unix milliseconds.
--   status    'pending' | 'replayed'; no CHECK so a later status does not need
--             a table rebuild (SQLite cannot alter a CHECK in place).
--   claimed_by / claimed_at_ms: reserved for the replay feature's claims.
CREATE TABLE IF NOT EXISTS dead_letters (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    body                BLOB    NOT NULL,
    routing_key         TEXT    NOT NULL,
    headers             TEXT    NOT NULL DEFAULT '{}',
    intent_id           TEXT,
    intent_type         TEXT,
    channels            TEXT    NOT NULL DEFAULT '[]',
    reason              TEXT    NOT NULL,
    error               TEXT    NOT NULL,
    pusher_status       INTEGER,
    pusher_body         TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    first_seen_at_ms    INTEGER NOT NULL,
    dead_lettered_at_ms INTEGER NOT NULL,
    status              TEXT    NOT NULL DEFAULT 'pending',
    replay_count        INTEGER NOT NULL DEFAULT 0,
    last_replayed_at_ms INTEGER,
    claimed_by          TEXT,
    claimed_at_ms       INTEGER
);

-- Listing is newest/oldest first with keyset pagination on (time, id); the
-- filtered indexes end with the same pair so a filtered list needs no sort.
CREATE INDEX IF NOT EXISTS dead_letters_time_idx
    ON dead_letters (dead_lettered_at_ms, id);
CREATE INDEX IF NOT EXISTS dead_letters_reason_idx
    ON dead_letters (reason, dead_lettered_at_ms, id);
CREATE INDEX IF NOT EXISTS dead_letters_intent_type_idx
    ON dead_letters (intent_type, dead_lettered_at_ms, id);
CREATE INDEX IF NOT EXISTS dead_letters_status_idx
    ON dead_letters (status, dead_lettered_at_ms, id);
-- "What happened to intent X?" is the first question an operator asks.
CREATE INDEX IF NOT EXISTS dead_letters_intent_id_idx
    ON dead_letters (intent_id);
