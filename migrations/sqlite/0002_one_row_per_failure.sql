-- One failure is one row. The worker commits a dead letter before it acks the
-- delivery; a worker that dies between the two gets the intent redelivered,
-- fails it again, and used to store a second row for the same failure (a
-- replay would then publish the intent twice). A pending dead letter is now
-- unique per (intent_id, reason, replay_of), and the store's insert returns
-- the existing row instead of adding one. migrations/postgres does the same.
--
-- replay_of: the dead letter whose replay this failure came from (the
-- x-pusher-relay-dead-letter header), NULL for a first failure. It is part of
-- the key because replay marks a row 'replayed' only after the broker
-- confirmed the republish, and the worker can fail the republished intent
-- before that: keyed on (intent_id, reason) alone, the new failure would be
-- merged into the row being replayed and vanish when that row is marked.
--
-- Only pending rows take part: a replayed intent that fails again is a new
-- failure. Rows without an intent id cannot be matched and are all kept.
ALTER TABLE dead_letters ADD COLUMN replay_of INTEGER;

-- Stores written before this migration may hold the duplicates the index
-- forbids. Each later copy is the same intent failed for the same reason
-- again (the worker already treats one intent id as one intent: its dedup
-- cache drops a second delivery of a delivered id), so it is deleted rather
-- than kept under another status: a second status would show in every list
-- and stat as if it were a failure of its own, and replaying it would publish
-- the intent twice. The lowest id, the first failure, is kept. The ALTER
-- above holds the table's write lock until this migration commits, so an
-- older worker cannot add a copy between this DELETE and the index.
DELETE FROM dead_letters
WHERE status = 'pending'
  AND intent_id IS NOT NULL
  AND EXISTS (
      SELECT 1 FROM dead_letters AS first
      WHERE first.status = 'pending'
        AND first.intent_id = dead_letters.intent_id
        AND first.reason = dead_letters.reason
        AND first.id < dead_letters.id
  );

-- COALESCE because NULLs never conflict in a unique index: first failures
-- (replay_of NULL) must conflict with each other. A worker from before this
-- migration (rolling upgrade) inserts without ON CONFLICT, so a duplicate
-- fails its whole batch with a unique violation; its writer retries and the
-- deliveries stay unacked until a new worker takes them: delayed, not lost.
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_pending_failure_idx
    ON dead_letters (intent_id, reason, COALESCE(replay_of, 0))
    WHERE status = 'pending' AND intent_id IS NOT NULL;
