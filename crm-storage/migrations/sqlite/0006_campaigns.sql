-- Campaigns (a template sent to an audience through one channel) and their
-- recipients, one row per audience entry planned.

CREATE TABLE IF NOT EXISTS campaigns (
    id BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL,
    name TEXT NOT NULL,
    -- No foreign key: a campaign keeps a deleted channel's id (and stops).
    channel_id BLOB NOT NULL,
    template_name TEXT NOT NULL,
    template_language TEXT NOT NULL,
    -- JSON object of variables.
    variables TEXT NOT NULL DEFAULT '{}',
    -- JSON Audience.
    audience TEXT NOT NULL,
    state TEXT NOT NULL,
    scheduled_at INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    stop_reason TEXT,
    -- Plan progress, moved only by plan_recipients.
    plan_planned INTEGER NOT NULL DEFAULT 0,
    plan_after BLOB,
    plan_done INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS campaigns_account_idx ON campaigns (account_id, id);

CREATE TABLE IF NOT EXISTS campaign_recipients (
    campaign_id BLOB NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    account_id BLOB NOT NULL,
    -- No foreign key: the row keeps a deleted contact's id (no personal data).
    contact_id BLOB,
    -- Only for a listed phone that is no contact.
    phone TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    message_id BLOB,
    replied_at INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, seq)
);
-- A contact is a recipient of a campaign once.
CREATE UNIQUE INDEX IF NOT EXISTS campaign_recipients_contact_key
    ON campaign_recipients (campaign_id, contact_id) WHERE contact_id IS NOT NULL;
-- Status reports find their recipient by message.
CREATE UNIQUE INDEX IF NOT EXISTS campaign_recipients_message_key
    ON campaign_recipients (account_id, message_id) WHERE message_id IS NOT NULL;
-- Pending recipients in order, and counts by state.
CREATE INDEX IF NOT EXISTS campaign_recipients_state_idx ON campaign_recipients (campaign_id, state, seq);
-- Replies find the contact's recipients.
CREATE INDEX IF NOT EXISTS campaign_recipients_contact_idx
    ON campaign_recipients (account_id, contact_id) WHERE contact_id IS NOT NULL;
