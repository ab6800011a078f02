-- Channels (an account's connections to messaging providers) and the
-- messages' channel and client reference. Independent of 0002.

CREATE TABLE IF NOT EXISTS channels (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    kind text NOT NULL,
    name text NOT NULL,
    -- The provider's identifier, routing inbound traffic.
    provider_id text,
    -- Non-secret settings (a JSON object).
    settings jsonb NOT NULL DEFAULT '{}',
    -- SealedSecret::encode(): v1.<key id>.<base64url>; never plaintext.
    credentials text,
    pacing jsonb NOT NULL DEFAULT '{}',
    is_default boolean NOT NULL DEFAULT false,
    enabled boolean NOT NULL DEFAULT true,
    -- NULL when not throttled.
    throttle jsonb,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version bigint NOT NULL DEFAULT 0
);
-- Inbound traffic resolves to one channel: (kind, provider_id) is unique across accounts.
CREATE UNIQUE INDEX IF NOT EXISTS channels_kind_provider_key
    ON channels (kind, provider_id) WHERE provider_id IS NOT NULL;
-- At most one default per account (the store clears the old one first,
-- under a per-account advisory lock).
CREATE UNIQUE INDEX IF NOT EXISTS channels_account_default_key ON channels (account_id) WHERE is_default;
CREATE INDEX IF NOT EXISTS channels_account_idx ON channels (account_id, id);

-- No foreign key: a deleted channel's messages keep its id.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS channel_id uuid;
-- The caller's Idempotency-Key, unique per account.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS client_reference text;
CREATE UNIQUE INDEX IF NOT EXISTS messages_account_client_reference_key
    ON messages (account_id, client_reference) WHERE client_reference IS NOT NULL;
