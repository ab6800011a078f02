-- The inbox (#12): each thread's read state and assignment, one row per
-- (account, contact) a user opened or assigned; deleted with the contact.
CREATE TABLE IF NOT EXISTS inbox_threads (
    account_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    -- The user the conversation is assigned to (NULL: nobody).
    assignee_id uuid,
    assigned_at timestamptz,
    -- Every message with an id up to this one was read (ids are UUIDv7).
    read_through uuid,
    read_at timestamptz,
    read_by uuid,
    PRIMARY KEY (account_id, contact_id)
);
CREATE INDEX IF NOT EXISTS inbox_threads_assignee_idx ON inbox_threads (account_id, assignee_id);

-- The inbox list: contacts with messages by last activity, scanned backwards.
CREATE INDEX IF NOT EXISTS contacts_activity_idx
    ON contacts (account_id, (GREATEST(last_inbound_at, last_outbound_at)), id)
    WHERE GREATEST(last_inbound_at, last_outbound_at) IS NOT NULL;

-- Unread counts: a thread's inbound messages after an id.
CREATE INDEX IF NOT EXISTS messages_inbound_thread_idx
    ON messages (account_id, contact_id, id) WHERE direction = 'inbound';
