-- Dashboard login sessions: their own table (they used to be API keys named
-- `session <email>`). Stored hashed like keys; removed once expired.
CREATE TABLE IF NOT EXISTS sessions (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    user_id uuid NOT NULL REFERENCES users (id),
    role text NOT NULL,
    prefix text NOT NULL,
    hash text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS sessions_prefix_key ON sessions (prefix);
CREATE INDEX IF NOT EXISTS sessions_user_idx ON sessions (account_id, user_id);
CREATE INDEX IF NOT EXISTS sessions_expires_idx ON sessions (expires_at);
