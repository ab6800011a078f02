-- Billing (issue #13): the provider's verified webhook events (stored before
-- the webhook is answered, applied once by the `billing.apply` job), the
-- account ↔ provider customer links, and subscription states under the
-- ordering rule of crm_core::domain::billing.
CREATE TABLE IF NOT EXISTS billing_events (
    -- The provider's event id (evt_…): a redelivery is the same row.
    id TEXT PRIMARY KEY NOT NULL,
    type TEXT NOT NULL,
    -- Microseconds since the Unix epoch (the provider's `created`).
    created INTEGER NOT NULL,
    payload TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    applied_at INTEGER
);

CREATE TABLE IF NOT EXISTS billing_customers (
    account_id BLOB PRIMARY KEY NOT NULL REFERENCES accounts (id),
    customer_id TEXT NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS billing_subscriptions (
    id TEXT PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL REFERENCES accounts (id),
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    price_id TEXT,
    price_amount INTEGER,
    price_currency TEXT,
    quantity INTEGER NOT NULL,
    current_period_end INTEGER,
    cancel_at_period_end INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    source_event_id TEXT NOT NULL,
    source_event_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS billing_subscriptions_account ON billing_subscriptions (account_id, created_at);
