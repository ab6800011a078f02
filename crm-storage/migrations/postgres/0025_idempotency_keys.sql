-- Idempotency keys of creation requests (issue #11: `Idempotency-Key` on
-- POST /automations and /sequences): one claim per (account, scope, key),
-- the fingerprint of the request that claimed it, the resource it created
-- (NULL while in flight). created_at: microseconds since the Unix epoch, as
-- in the SQLite table, so both dialects share the statements.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    account_id uuid NOT NULL,
    scope text NOT NULL,
    idem_key text NOT NULL,
    fingerprint text NOT NULL,
    resource_id text,
    created_at bigint NOT NULL,
    PRIMARY KEY (account_id, scope, idem_key)
);
