-- Dashboard login sessions: their own table (they used to be API keys named
-- `session <email>`). Stored hashed like keys; removed once expired.
CREATE TABLE IF NOT EXISTS sessions (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL REFERENCES accounts (id),
    user_id BLOB NOT NULL REFERENCES users (id),
    role TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS sessions_prefix_key ON sessions (prefix);
CREATE INDEX IF NOT EXISTS sessions_user_idx ON sessions (account_id, user_id);
CREATE INDEX IF NOT EXISTS sessions_expires_idx ON sessions (expires_at);
