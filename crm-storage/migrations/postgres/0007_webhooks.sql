-- Outbound webhooks (issue #10): endpoints, one delivery per (endpoint,
-- event), and the attempts log. Independent of 0005 and 0006.

CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    url text NOT NULL,
    description text NOT NULL DEFAULT '',
    -- NULL: every event; else a JSON array of exact names and `prefix.*` patterns.
    event_types jsonb,
    enabled boolean NOT NULL DEFAULT true,
    disabled_reason text,
    -- SealedSecret::encode(): v1.<key id>.<base64url>; never plaintext.
    secret text NOT NULL,
    previous_secret text,
    previous_secret_expires_at timestamptz,
    headers jsonb NOT NULL DEFAULT '{}',
    rate_limit_per_second bigint,
    failing_since timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS webhook_endpoints_account_idx ON webhook_endpoints (account_id, id);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    ordering_key text,
    status text NOT NULL,
    attempts bigint NOT NULL DEFAULT 0,
    last_status_code bigint,
    last_error text,
    next_attempt_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
-- One delivery per (endpoint, event): a repeated fan-out finds the first.
CREATE UNIQUE INDEX IF NOT EXISTS webhook_deliveries_endpoint_event_key ON webhook_deliveries (endpoint_id, event_id);
CREATE INDEX IF NOT EXISTS webhook_deliveries_account_idx ON webhook_deliveries (account_id, id);
-- FIFO per contact: the pending deliveries of one key on one endpoint, by event.
CREATE INDEX IF NOT EXISTS webhook_deliveries_fifo_idx
    ON webhook_deliveries (endpoint_id, ordering_key, event_id) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS webhook_attempts (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    endpoint_id uuid NOT NULL,
    at timestamptz NOT NULL,
    status_code bigint,
    latency_ms bigint NOT NULL,
    response_excerpt text,
    error text,
    succeeded boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);
