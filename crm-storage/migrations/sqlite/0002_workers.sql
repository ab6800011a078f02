-- Workers: consumer filters, dead letters on the outbox, durable jobs.
-- Times are INTEGER microseconds since the Unix epoch, like 0001.

-- The event types a consumer wants: a JSON array of exact names and
-- `prefix.*` patterns; NULL = every event.
ALTER TABLE outbox_consumers ADD COLUMN event_types TEXT;

-- When the item was dead-lettered (its error stays in last_error); NULL = alive.
ALTER TABLE outbox ADD COLUMN dead_at INTEGER;
CREATE INDEX IF NOT EXISTS outbox_dead_idx ON outbox (consumer, event_id) WHERE dead_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS jobs (
    id BLOB PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    -- NULL for system jobs.
    account_id BLOB,
    payload TEXT NOT NULL,
    unique_key TEXT,
    run_at INTEGER NOT NULL,
    lease_id BLOB,
    lease_until INTEGER,
    attempt INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    state TEXT NOT NULL DEFAULT 'scheduled' CHECK (state IN ('scheduled', 'dead')),
    created_at INTEGER NOT NULL
);
-- A key is held while its job exists (scheduled or dead; done jobs are deleted).
CREATE UNIQUE INDEX IF NOT EXISTS jobs_kind_unique_key ON jobs (kind, unique_key) WHERE unique_key IS NOT NULL;
-- Claims: due scheduled jobs of a kind, earliest first.
CREATE INDEX IF NOT EXISTS jobs_claim_idx ON jobs (kind, run_at) WHERE state = 'scheduled';
CREATE INDEX IF NOT EXISTS jobs_account_idx ON jobs (account_id, id);
