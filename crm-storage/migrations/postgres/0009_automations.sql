-- Automation (issue #11): rules and their versions, runs (one per rule and
-- triggering event), lead scoring models and score history.

CREATE TABLE IF NOT EXISTS automations (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    name text NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    -- The event type the trigger fires on (automation.scheduled for schedules).
    trigger_event text NOT NULL,
    -- RuleDefinition of the current version.
    definition jsonb NOT NULL,
    version bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS automations_account_idx ON automations (account_id, id);
CREATE INDEX IF NOT EXISTS automations_trigger_idx ON automations (account_id, trigger_event, id);

CREATE TABLE IF NOT EXISTS automation_versions (
    automation_id uuid NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
    version bigint NOT NULL,
    name text NOT NULL,
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (automation_id, version)
);

CREATE TABLE IF NOT EXISTS automation_runs (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    automation_id uuid NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
    version bigint NOT NULL,
    event_id uuid NOT NULL,
    contact_id uuid,
    status text NOT NULL,
    reason text,
    next_step bigint NOT NULL DEFAULT 0,
    -- JSON array of StepOutcome.
    steps jsonb NOT NULL DEFAULT '[]',
    started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
-- A redelivered event runs a rule once.
CREATE UNIQUE INDEX IF NOT EXISTS automation_runs_event_key ON automation_runs (automation_id, event_id);
CREATE INDEX IF NOT EXISTS automation_runs_rule_idx ON automation_runs (automation_id, id);
CREATE INDEX IF NOT EXISTS automation_runs_contact_idx ON automation_runs (automation_id, contact_id, started_at);

CREATE TABLE IF NOT EXISTS scoring_models (
    account_id uuid PRIMARY KEY,
    model jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS score_history (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    old_score bigint NOT NULL,
    new_score bigint NOT NULL,
    new_stage text,
    reason text NOT NULL,
    event_id uuid,
    cause text NOT NULL,
    at timestamptz NOT NULL
);
-- A cause applied twice to a contact is stored once.
CREATE UNIQUE INDEX IF NOT EXISTS score_history_cause_key ON score_history (contact_id, cause);
CREATE INDEX IF NOT EXISTS score_history_contact_idx ON score_history (account_id, contact_id, id);
