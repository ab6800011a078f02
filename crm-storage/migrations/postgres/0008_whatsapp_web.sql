-- Channel session leases (the WhatsApp Web channel): one process at a time
-- owns a channel's provider session; it renews the lease while the session
-- lives, and another process takes over once it has expired (times from
-- the database's clock). Rows go with their channel.
CREATE TABLE IF NOT EXISTS channel_leases (
    channel_id uuid PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
    owner text NOT NULL,
    expires_at timestamptz NOT NULL
);
