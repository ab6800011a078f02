-- Media records (#15): one row per file in the media store. The bytes live
-- in the media store under `key`; the message and contact are links, not
-- foreign keys (a contact's erasure deletes its media through them).
CREATE TABLE IF NOT EXISTS media (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL REFERENCES accounts (id),
    key TEXT,
    content_type TEXT NOT NULL,
    filename TEXT NOT NULL,
    size INTEGER,
    sha256 TEXT,
    origin TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    message_id BLOB,
    contact_id BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS media_stored_idx ON media (created_at) WHERE state = 'stored';
CREATE INDEX IF NOT EXISTS media_contact_idx ON media (account_id, contact_id);
