-- WhatsApp groups (#9): one row per (account, channel, WhatsApp group id
-- `…@g.us`), its members with their admin flag as JSON, and the group
-- threads with per-participant receipts.
CREATE TABLE IF NOT EXISTS channel_groups (
    id BLOB PRIMARY KEY,
    account_id BLOB NOT NULL REFERENCES accounts (id),
    -- No foreign key: a group keeps a deleted channel's id, as messages do.
    channel_id BLOB NOT NULL,
    jid TEXT NOT NULL,
    subject TEXT NOT NULL,
    description TEXT,
    -- [{"phone": "+55…", "admin": true}, …], sorted by phone.
    participants TEXT NOT NULL DEFAULT '[]',
    left_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (account_id, channel_id, jid)
);

CREATE TABLE IF NOT EXISTS group_messages (
    id BLOB PRIMARY KEY,
    account_id BLOB NOT NULL REFERENCES accounts (id),
    channel_id BLOB NOT NULL,
    group_id BLOB NOT NULL REFERENCES channel_groups (id) ON DELETE CASCADE,
    direction TEXT NOT NULL,
    sender TEXT,
    sender_name TEXT,
    content TEXT NOT NULL,
    provider_message_id TEXT,
    status TEXT NOT NULL,
    -- {"+55…": "delivered", …}: each participant's own status.
    receipts TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS group_messages_provider_idx
    ON group_messages (account_id, provider_message_id) WHERE provider_message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS group_messages_thread_idx ON group_messages (group_id, id);
