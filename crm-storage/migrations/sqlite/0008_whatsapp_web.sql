-- Channel session leases (the WhatsApp Web channel): one process at a time
-- owns a channel's provider session; it renews the lease while the session
-- lives, and another process takes over once it has expired. Rows go with
-- their channel (the store deletes them with it).
CREATE TABLE IF NOT EXISTS channel_leases (
    channel_id BLOB PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL,
    -- Microseconds since the Unix epoch.
    expires_at INTEGER NOT NULL
);
