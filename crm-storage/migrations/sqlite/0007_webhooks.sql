-- Outbound webhooks (issue #10): endpoints, one delivery per (endpoint,
-- event), and the attempts log. Independent of 0005 and 0006.

CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- JSON array of names and `prefix.*` patterns; NULL: every event.
    event_types TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    -- SealedSecret::encode(): v1.<key id>.<base64url>; never plaintext.
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_expires_at INTEGER,
    -- JSON object of header names to values.
    headers TEXT NOT NULL DEFAULT '{}',
    rate_limit_per_second INTEGER,
    failing_since INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS webhook_endpoints_account_idx ON webhook_endpoints (account_id, id);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    endpoint_id BLOB NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id BLOB NOT NULL,
    event_type TEXT NOT NULL,
    ordering_key TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status_code INTEGER,
    last_error TEXT,
    next_attempt_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS webhook_deliveries_endpoint_event_key ON webhook_deliveries (endpoint_id, event_id);
CREATE INDEX IF NOT EXISTS webhook_deliveries_account_idx ON webhook_deliveries (account_id, id);
CREATE INDEX IF NOT EXISTS webhook_deliveries_fifo_idx
    ON webhook_deliveries (endpoint_id, ordering_key, event_id) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS webhook_attempts (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    delivery_id BLOB NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    endpoint_id BLOB NOT NULL,
    at INTEGER NOT NULL,
    status_code INTEGER,
    latency_ms INTEGER NOT NULL,
    response_excerpt TEXT,
    error TEXT,
    succeeded INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);
