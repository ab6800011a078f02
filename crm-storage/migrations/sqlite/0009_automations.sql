-- Automation (issue #11): rules and their versions, runs (one per rule and
-- triggering event), lead scoring models and score history.

CREATE TABLE IF NOT EXISTS automations (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    name TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    -- The event type the trigger fires on (automation.scheduled for schedules).
    trigger_event TEXT NOT NULL,
    -- JSON RuleDefinition of the current version.
    definition TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS automations_account_idx ON automations (account_id, id);
CREATE INDEX IF NOT EXISTS automations_trigger_idx ON automations (account_id, trigger_event, id);

CREATE TABLE IF NOT EXISTS automation_versions (
    automation_id BLOB NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (automation_id, version)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS automation_runs (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    automation_id BLOB NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    contact_id BLOB,
    status TEXT NOT NULL,
    reason TEXT,
    next_step INTEGER NOT NULL DEFAULT 0,
    -- JSON array of StepOutcome.
    steps TEXT NOT NULL DEFAULT '[]',
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- A redelivered event runs a rule once.
CREATE UNIQUE INDEX IF NOT EXISTS automation_runs_event_key ON automation_runs (automation_id, event_id);
CREATE INDEX IF NOT EXISTS automation_runs_rule_idx ON automation_runs (automation_id, id);
CREATE INDEX IF NOT EXISTS automation_runs_contact_idx ON automation_runs (automation_id, contact_id, started_at);

CREATE TABLE IF NOT EXISTS scoring_models (
    account_id BLOB PRIMARY KEY NOT NULL,
    model TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS score_history (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    contact_id BLOB NOT NULL,
    old_score INTEGER NOT NULL,
    new_score INTEGER NOT NULL,
    new_stage TEXT,
    reason TEXT NOT NULL,
    event_id BLOB,
    cause TEXT NOT NULL,
    at INTEGER NOT NULL
);
-- A cause applied twice to a contact is stored once.
CREATE UNIQUE INDEX IF NOT EXISTS score_history_cause_key ON score_history (contact_id, cause);
CREATE INDEX IF NOT EXISTS score_history_contact_idx ON score_history (account_id, contact_id, id);
