-- Connections (#16): one account's link to an outside provider (sendgrid,
-- smtp, slack, ga4, …): non-secret settings, sealed credentials, status.
CREATE TABLE IF NOT EXISTS connections (
    account_id uuid NOT NULL REFERENCES accounts (id),
    provider text NOT NULL,
    -- Non-secret settings (a JSON object).
    settings jsonb NOT NULL DEFAULT '{}',
    -- SealedSecret::encode(): v1.<key id>.<base64url>; never plaintext.
    credentials text,
    status text NOT NULL,
    last_error text,
    last_success_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, provider)
);
