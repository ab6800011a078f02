-- Follow-up sequences (issue #11) and their per-contact enrolments.
-- Times are timestamptz.

CREATE TABLE IF NOT EXISTS sequences (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    name text NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    -- JSON array of SequenceStep.
    steps jsonb NOT NULL,
    -- JSON SendWindow; NULL: any time.
    send_window jsonb,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sequences_account_idx ON sequences (account_id, id);

CREATE TABLE IF NOT EXISTS sequence_enrolments (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    sequence_id uuid NOT NULL REFERENCES sequences (id) ON DELETE CASCADE,
    -- No foreign key: the runner stops an enrolment whose contact is gone.
    contact_id uuid NOT NULL,
    state text NOT NULL CHECK (state IN ('active', 'completed', 'stopped')),
    stop_reason text,
    stop_detail text,
    current_step bigint NOT NULL DEFAULT 0,
    next_run_at timestamptz,
    stage text NOT NULL,
    -- JSON: who enrolled it (an automation run); NULL: a person.
    source jsonb,
    enrolled_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version bigint NOT NULL DEFAULT 0
);
-- One active enrolment per contact and sequence.
CREATE UNIQUE INDEX IF NOT EXISTS sequence_enrolments_active_idx
    ON sequence_enrolments (sequence_id, contact_id) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS sequence_enrolments_account_idx ON sequence_enrolments (account_id, id);
CREATE INDEX IF NOT EXISTS sequence_enrolments_contact_idx ON sequence_enrolments (account_id, contact_id, state);
