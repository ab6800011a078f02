-- OAuth 2.0 connections (#16): one grant per account and provider with its
-- tokens sealed (crm_core::secrets; associated data names the account and
-- the provider), the authorizations in flight (only the SHA-256 of each
-- one-time state is kept, with the sealed PKCE verifier), and the mapping
-- from crm contacts to records of an external CRM (Salesforce).
CREATE TABLE IF NOT EXISTS oauth_grants (
    account_id BLOB NOT NULL REFERENCES accounts (id),
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    scopes TEXT NOT NULL,
    tokens TEXT NOT NULL,
    expires_at INTEGER,
    instance_url TEXT,
    last_error TEXT,
    connected_at INTEGER NOT NULL,
    refreshed_at INTEGER,
    PRIMARY KEY (account_id, provider)
);

CREATE TABLE IF NOT EXISTS oauth_pending (
    state_hash TEXT PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL REFERENCES accounts (id),
    provider TEXT NOT NULL,
    principal TEXT NOT NULL,
    verifier TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth_pending_expiry_idx ON oauth_pending (expires_at);

CREATE TABLE IF NOT EXISTS external_links (
    account_id BLOB NOT NULL REFERENCES accounts (id),
    contact_id BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    system TEXT NOT NULL,
    object TEXT NOT NULL,
    external_id TEXT NOT NULL,
    synced_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, contact_id, system)
);
CREATE UNIQUE INDEX IF NOT EXISTS external_links_external_idx ON external_links (account_id, system, external_id);
