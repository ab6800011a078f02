-- Follow-up sequences (issue #11) and their per-contact enrolments.
-- Times are INTEGER microseconds since the Unix epoch, like 0001.

CREATE TABLE IF NOT EXISTS sequences (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    name TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    -- JSON array of SequenceStep.
    steps TEXT NOT NULL,
    -- JSON SendWindow; NULL: any time.
    send_window TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sequences_account_idx ON sequences (account_id, id);

CREATE TABLE IF NOT EXISTS sequence_enrolments (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    sequence_id BLOB NOT NULL REFERENCES sequences (id) ON DELETE CASCADE,
    -- No foreign key: the runner stops an enrolment whose contact is gone.
    contact_id BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'completed', 'stopped')),
    stop_reason TEXT,
    stop_detail TEXT,
    current_step INTEGER NOT NULL DEFAULT 0,
    next_run_at INTEGER,
    stage TEXT NOT NULL,
    -- JSON: who enrolled it (an automation run); NULL: a person.
    source TEXT,
    enrolled_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
);
-- One active enrolment per contact and sequence.
CREATE UNIQUE INDEX IF NOT EXISTS sequence_enrolments_active_idx
    ON sequence_enrolments (sequence_id, contact_id) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS sequence_enrolments_account_idx ON sequence_enrolments (account_id, id);
CREATE INDEX IF NOT EXISTS sequence_enrolments_contact_idx ON sequence_enrolments (account_id, contact_id, state);
