-- Connections (#16): one account's link to an outside provider (sendgrid,
-- smtp, slack, ga4, …): non-secret settings, sealed credentials, status.
CREATE TABLE IF NOT EXISTS connections (
    account_id BLOB NOT NULL REFERENCES accounts (id),
    provider TEXT NOT NULL,
    -- JSON object of non-secret settings.
    settings TEXT NOT NULL DEFAULT '{}',
    -- SealedSecret::encode(): v1.<key id>.<base64url>; never plaintext.
    credentials TEXT,
    status TEXT NOT NULL,
    last_error TEXT,
    last_success_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, provider)
);
