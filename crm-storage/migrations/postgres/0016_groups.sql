-- WhatsApp groups (#9): one row per (account, channel, WhatsApp group id
-- `…@g.us`), its members with their admin flag as JSON, and the group
-- threads with per-participant receipts.
CREATE TABLE IF NOT EXISTS channel_groups (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    -- No foreign key: a group keeps a deleted channel's id, as messages do.
    channel_id uuid NOT NULL,
    jid text NOT NULL,
    subject text NOT NULL,
    description text,
    -- [{"phone": "+55…", "admin": true}, …], sorted by phone.
    participants jsonb NOT NULL DEFAULT '[]',
    left_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (account_id, channel_id, jid)
);

CREATE TABLE IF NOT EXISTS group_messages (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    channel_id uuid NOT NULL,
    group_id uuid NOT NULL REFERENCES channel_groups (id) ON DELETE CASCADE,
    direction text NOT NULL,
    sender text,
    sender_name text,
    content jsonb NOT NULL,
    provider_message_id text,
    status text NOT NULL,
    -- {"+55…": "delivered", …}: each participant's own status.
    receipts jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS group_messages_provider_idx
    ON group_messages (account_id, provider_message_id) WHERE provider_message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS group_messages_thread_idx ON group_messages (group_id, id);
