-- Billing (issue #13): the provider's verified webhook events (stored before
-- the webhook is answered, applied once by the `billing.apply` job), the
-- account ↔ provider customer links, and subscription states under the
-- ordering rule of crm_core::domain::billing.
CREATE TABLE IF NOT EXISTS billing_events (
    -- The provider's event id (evt_…): a redelivery is the same row.
    id text PRIMARY KEY,
    type text NOT NULL,
    created timestamptz NOT NULL,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL,
    applied_at timestamptz
);

CREATE TABLE IF NOT EXISTS billing_customers (
    account_id uuid PRIMARY KEY REFERENCES accounts (id),
    customer_id text NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS billing_subscriptions (
    id text PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    customer_id text NOT NULL,
    status text NOT NULL,
    price_id text,
    price_amount bigint,
    price_currency text,
    quantity bigint NOT NULL,
    current_period_end timestamptz,
    cancel_at_period_end boolean NOT NULL,
    created_at timestamptz NOT NULL,
    source_event_id text NOT NULL,
    source_event_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS billing_subscriptions_account ON billing_subscriptions (account_id, created_at);
