-- OAuth 2.0 connections (#16): one grant per account and provider with its
-- tokens sealed (crm_core::secrets; associated data names the account and
-- the provider), the authorizations in flight (only the SHA-256 of each
-- one-time state is kept, with the sealed PKCE verifier), and the mapping
-- from crm contacts to records of an external CRM (Salesforce).
CREATE TABLE IF NOT EXISTS oauth_grants (
    account_id uuid NOT NULL REFERENCES accounts (id),
    provider text NOT NULL,
    status text NOT NULL,
    scopes text[] NOT NULL,
    tokens text NOT NULL,
    expires_at timestamptz,
    instance_url text,
    last_error text,
    connected_at timestamptz NOT NULL,
    refreshed_at timestamptz,
    PRIMARY KEY (account_id, provider)
);

CREATE TABLE IF NOT EXISTS oauth_pending (
    state_hash text PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    provider text NOT NULL,
    principal text NOT NULL,
    verifier text NOT NULL,
    redirect_uri text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth_pending_expiry_idx ON oauth_pending (expires_at);

CREATE TABLE IF NOT EXISTS external_links (
    account_id uuid NOT NULL REFERENCES accounts (id),
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    system text NOT NULL,
    object text NOT NULL,
    external_id text NOT NULL,
    synced_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, contact_id, system)
);
CREATE UNIQUE INDEX IF NOT EXISTS external_links_external_idx ON external_links (account_id, system, external_id);
