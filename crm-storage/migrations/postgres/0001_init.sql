-- crm schema, PostgreSQL. Ids are native uuid (UUIDv7 sorts by time);
-- times are timestamptz; JSON is jsonb.

CREATE TABLE IF NOT EXISTS accounts (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS users (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    email text NOT NULL,
    name text NOT NULL,
    role text NOT NULL,
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (email);
CREATE INDEX IF NOT EXISTS users_account_idx ON users (account_id, id);

CREATE TABLE IF NOT EXISTS api_keys (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    name text NOT NULL,
    prefix text NOT NULL,
    hash text NOT NULL,
    role text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_prefix_key ON api_keys (prefix);
CREATE INDEX IF NOT EXISTS api_keys_account_idx ON api_keys (account_id, id);

CREATE TABLE IF NOT EXISTS contacts (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    name text NOT NULL,
    -- Rust's to_lowercase of name, for prefix search.
    name_lower text NOT NULL,
    phone text NOT NULL,
    email text,
    whatsapp_id text,
    -- The tags (contact_tags is the searchable copy).
    tags text[] NOT NULL DEFAULT '{}',
    metadata jsonb NOT NULL DEFAULT '{}',
    lead_score smallint NOT NULL,
    lead_stage text NOT NULL,
    opt_in_status text NOT NULL,
    opt_in_changed_at timestamptz,
    opt_in_source text,
    last_inbound_at timestamptz,
    last_outbound_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS contacts_account_phone_key ON contacts (account_id, phone);
CREATE INDEX IF NOT EXISTS contacts_account_idx ON contacts (account_id, id);
CREATE INDEX IF NOT EXISTS contacts_account_name_idx ON contacts (account_id, name_lower text_pattern_ops);
CREATE INDEX IF NOT EXISTS contacts_account_email_idx ON contacts (account_id, email text_pattern_ops);

CREATE TABLE IF NOT EXISTS contact_tags (
    account_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    tag text NOT NULL,
    PRIMARY KEY (contact_id, tag)
);
CREATE INDEX IF NOT EXISTS contact_tags_account_tag_idx ON contact_tags (account_id, tag, contact_id);

CREATE TABLE IF NOT EXISTS messages (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    direction text NOT NULL,
    kind text NOT NULL,
    content jsonb NOT NULL,
    status text NOT NULL,
    provider_message_id text,
    error jsonb,
    created_at timestamptz NOT NULL,
    sent_at timestamptz,
    delivered_at timestamptz,
    read_at timestamptz,
    failed_at timestamptz,
    updated_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_account_provider_key
    ON messages (account_id, provider_message_id) WHERE provider_message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_thread_idx ON messages (account_id, contact_id, id);

CREATE TABLE IF NOT EXISTS templates (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    name text NOT NULL,
    language text NOT NULL,
    category text NOT NULL,
    body text NOT NULL,
    variables text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS templates_account_name_language_key ON templates (account_id, name, language);
CREATE INDEX IF NOT EXISTS templates_account_idx ON templates (account_id, id);

CREATE TABLE IF NOT EXISTS events (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS events_account_idx ON events (account_id, id);

CREATE TABLE IF NOT EXISTS outbox_consumers (
    name text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS outbox (
    consumer text NOT NULL,
    event_id uuid NOT NULL REFERENCES events (id),
    due_at timestamptz NOT NULL DEFAULT '-infinity',
    lease_id uuid,
    lease_until timestamptz,
    attempt integer NOT NULL DEFAULT 0,
    last_error text,
    PRIMARY KEY (consumer, event_id)
);
