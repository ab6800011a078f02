-- Idempotency keys of creation requests (issue #11: `Idempotency-Key` on
-- POST /automations and /sequences): one claim per (account, scope, key),
-- the fingerprint of the request that claimed it, the resource it created
-- (NULL while in flight). created_at: microseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    account_id BLOB NOT NULL,
    scope TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    resource_id TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, scope, idem_key)
);
