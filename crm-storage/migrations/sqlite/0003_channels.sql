-- Channels (an account's connections to messaging providers) and the
-- messages' channel and client reference. Independent of 0002.

CREATE TABLE IF NOT EXISTS channels (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    -- The provider's identifier, routing inbound traffic.
    provider_id TEXT,
    -- JSON object of non-secret settings.
    settings TEXT NOT NULL DEFAULT '{}',
    -- SealedSecret::encode(): v1.<key id>.<base64url>; never plaintext.
    credentials TEXT,
    -- JSON Pacing.
    pacing TEXT NOT NULL DEFAULT '{}',
    is_default INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    -- JSON Throttle, NULL when not throttled.
    throttle TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
);
-- Inbound traffic resolves to one channel: (kind, provider_id) is unique across accounts.
CREATE UNIQUE INDEX IF NOT EXISTS channels_kind_provider_key
    ON channels (kind, provider_id) WHERE provider_id IS NOT NULL;
-- At most one default per account (the stores clear the old one first).
CREATE UNIQUE INDEX IF NOT EXISTS channels_account_default_key ON channels (account_id) WHERE is_default;
CREATE INDEX IF NOT EXISTS channels_account_idx ON channels (account_id, id);

-- No foreign key: a deleted channel's messages keep its id.
ALTER TABLE messages ADD COLUMN channel_id BLOB;
-- The caller's Idempotency-Key, unique per account.
ALTER TABLE messages ADD COLUMN client_reference TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS messages_account_client_reference_key
    ON messages (account_id, client_reference) WHERE client_reference IS NOT NULL;
