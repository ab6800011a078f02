-- The inbox (#12): each thread's read state and assignment, one row per
-- (account, contact) a user opened or assigned; deleted with the contact.
CREATE TABLE IF NOT EXISTS inbox_threads (
    account_id BLOB NOT NULL,
    contact_id BLOB NOT NULL,
    -- The user the conversation is assigned to (NULL: nobody).
    assignee_id BLOB,
    assigned_at INTEGER,
    -- Every message with an id up to this one was read (ids are UUIDv7).
    read_through BLOB,
    read_at INTEGER,
    read_by BLOB,
    PRIMARY KEY (account_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inbox_threads_assignee_idx ON inbox_threads (account_id, assignee_id);

-- The inbox list: contacts with messages by last activity, scanned backwards
-- (the expression is the one the list query orders by).
CREATE INDEX IF NOT EXISTS contacts_activity_idx
    ON contacts (account_id, max(coalesce(last_inbound_at, 0), coalesce(last_outbound_at, 0)), id)
    WHERE max(coalesce(last_inbound_at, 0), coalesce(last_outbound_at, 0)) > 0;

-- Unread counts: a thread's inbound messages after an id.
CREATE INDEX IF NOT EXISTS messages_inbound_thread_idx
    ON messages (account_id, contact_id, id) WHERE direction = 'inbound';
