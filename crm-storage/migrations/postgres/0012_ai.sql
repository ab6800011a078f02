-- The assistant (crm-ai, issue #14): token usage per call, auto-reply
-- settings per account and channel, drafts suggested for agents.
CREATE TABLE IF NOT EXISTS ai_usage (
    id bigserial PRIMARY KEY,
    account_id uuid NOT NULL,
    at timestamptz NOT NULL,
    operation text NOT NULL,
    model text NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cost_micros bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS ai_usage_account_at_idx ON ai_usage (account_id, at);

-- scope: '' for the account-wide setting, else the channel id (text).
CREATE TABLE IF NOT EXISTS ai_auto_replies (
    account_id uuid NOT NULL REFERENCES accounts (id),
    scope text NOT NULL,
    channel_id uuid,
    mode text NOT NULL,
    context jsonb NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, scope)
);

CREATE TABLE IF NOT EXISTS ai_drafts (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    message_id uuid,
    text text NOT NULL,
    model text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ai_drafts_contact_idx ON ai_drafts (account_id, contact_id, id);

CREATE TABLE IF NOT EXISTS ai_analyses (
    message_id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    analysis jsonb NOT NULL,
    analyzed_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ai_analyses_contact_idx ON ai_analyses (account_id, contact_id, message_id);
