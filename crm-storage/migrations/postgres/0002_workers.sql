-- Workers: consumer filters, dead letters on the outbox, durable jobs.

-- The event types a consumer wants: exact names and `prefix.*` patterns;
-- NULL = every event.
ALTER TABLE outbox_consumers ADD COLUMN IF NOT EXISTS event_types text[];

-- When the item was dead-lettered (its error stays in last_error); NULL = alive.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS dead_at timestamptz;
CREATE INDEX IF NOT EXISTS outbox_dead_idx ON outbox (consumer, event_id) WHERE dead_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS jobs (
    id uuid PRIMARY KEY,
    kind text NOT NULL,
    -- NULL for system jobs.
    account_id uuid,
    payload jsonb NOT NULL,
    unique_key text,
    run_at timestamptz NOT NULL,
    lease_id uuid,
    lease_until timestamptz,
    attempt integer NOT NULL DEFAULT 0,
    last_error text,
    state text NOT NULL DEFAULT 'scheduled' CHECK (state IN ('scheduled', 'dead')),
    created_at timestamptz NOT NULL
);
-- A key is held while its job exists (scheduled or dead; done jobs are deleted).
CREATE UNIQUE INDEX IF NOT EXISTS jobs_kind_unique_key ON jobs (kind, unique_key) WHERE unique_key IS NOT NULL;
-- Claims: due scheduled jobs of a kind, earliest first.
CREATE INDEX IF NOT EXISTS jobs_claim_idx ON jobs (kind, run_at) WHERE state = 'scheduled';
CREATE INDEX IF NOT EXISTS jobs_account_idx ON jobs (account_id, id);
