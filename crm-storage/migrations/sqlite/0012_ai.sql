-- The assistant (crm-ai, issue #14): token usage per call, auto-reply
-- settings per account and channel, drafts suggested for agents.
CREATE TABLE IF NOT EXISTS ai_usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BLOB NOT NULL,
    at INTEGER NOT NULL,
    operation TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_micros INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ai_usage_account_at_idx ON ai_usage (account_id, at);

-- scope: '' for the account-wide setting, else the channel id (text).
CREATE TABLE IF NOT EXISTS ai_auto_replies (
    account_id BLOB NOT NULL REFERENCES accounts (id),
    scope TEXT NOT NULL,
    channel_id BLOB,
    mode TEXT NOT NULL,
    context TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, scope)
);

CREATE TABLE IF NOT EXISTS ai_drafts (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    contact_id BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    message_id BLOB,
    text TEXT NOT NULL,
    model TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ai_drafts_contact_idx ON ai_drafts (account_id, contact_id, id);

CREATE TABLE IF NOT EXISTS ai_analyses (
    message_id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    contact_id BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    analysis TEXT NOT NULL,
    analyzed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ai_analyses_contact_idx ON ai_analyses (account_id, contact_id, message_id);
