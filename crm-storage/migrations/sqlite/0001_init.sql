-- crm schema, SQLite. Ids are 16-byte UUID blobs (UUIDv7 sorts by time as
-- bytes); times are INTEGER microseconds since the Unix epoch; JSON is TEXT.

CREATE TABLE IF NOT EXISTS accounts (
    id BLOB PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS users (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL REFERENCES accounts (id),
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (email);
CREATE INDEX IF NOT EXISTS users_account_idx ON users (account_id, id);

CREATE TABLE IF NOT EXISTS api_keys (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_prefix_key ON api_keys (prefix);
CREATE INDEX IF NOT EXISTS api_keys_account_idx ON api_keys (account_id, id);

CREATE TABLE IF NOT EXISTS contacts (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    name TEXT NOT NULL,
    -- Rust's to_lowercase of name, for prefix search (BINARY range scans).
    name_lower TEXT NOT NULL,
    phone TEXT NOT NULL,
    email TEXT,
    whatsapp_id TEXT,
    -- JSON array of the tags (contact_tags is the searchable copy).
    tags TEXT NOT NULL DEFAULT '[]',
    metadata TEXT NOT NULL DEFAULT '{}',
    lead_score INTEGER NOT NULL,
    lead_stage TEXT NOT NULL,
    opt_in_status TEXT NOT NULL,
    opt_in_changed_at INTEGER,
    opt_in_source TEXT,
    last_inbound_at INTEGER,
    last_outbound_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS contacts_account_phone_key ON contacts (account_id, phone);
CREATE INDEX IF NOT EXISTS contacts_account_idx ON contacts (account_id, id);
CREATE INDEX IF NOT EXISTS contacts_account_name_idx ON contacts (account_id, name_lower);
CREATE INDEX IF NOT EXISTS contacts_account_email_idx ON contacts (account_id, email);

CREATE TABLE IF NOT EXISTS contact_tags (
    account_id BLOB NOT NULL,
    contact_id BLOB NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (contact_id, tag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS contact_tags_account_tag_idx ON contact_tags (account_id, tag, contact_id);

CREATE TABLE IF NOT EXISTS messages (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    contact_id BLOB NOT NULL,
    direction TEXT NOT NULL,
    kind TEXT NOT NULL,
    content TEXT NOT NULL,
    status TEXT NOT NULL,
    provider_message_id TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER,
    delivered_at INTEGER,
    read_at INTEGER,
    failed_at INTEGER,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_account_provider_key
    ON messages (account_id, provider_message_id) WHERE provider_message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_thread_idx ON messages (account_id, contact_id, id);

CREATE TABLE IF NOT EXISTS templates (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    name TEXT NOT NULL,
    language TEXT NOT NULL,
    category TEXT NOT NULL,
    body TEXT NOT NULL,
    variables TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS templates_account_name_language_key ON templates (account_id, name, language);
CREATE INDEX IF NOT EXISTS templates_account_idx ON templates (account_id, id);

CREATE TABLE IF NOT EXISTS events (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    occurred_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_account_idx ON events (account_id, id);

CREATE TABLE IF NOT EXISTS outbox_consumers (
    name TEXT PRIMARY KEY NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS outbox (
    consumer TEXT NOT NULL,
    event_id BLOB NOT NULL REFERENCES events (id),
    due_at INTEGER NOT NULL DEFAULT 0,
    lease_id BLOB,
    lease_until INTEGER,
    attempt INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;
