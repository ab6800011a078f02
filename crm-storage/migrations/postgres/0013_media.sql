-- Media records (#15): one row per file in the media store. The bytes live
-- in the media store under `key`; the message and contact are links, not
-- foreign keys (a contact's erasure deletes its media through them).
CREATE TABLE IF NOT EXISTS media (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    key text,
    content_type text NOT NULL,
    filename text NOT NULL,
    size bigint,
    sha256 text,
    origin text NOT NULL,
    state text NOT NULL,
    error text,
    message_id uuid,
    contact_id uuid,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS media_stored_idx ON media (created_at) WHERE state = 'stored';
CREATE INDEX IF NOT EXISTS media_contact_idx ON media (account_id, contact_id);
