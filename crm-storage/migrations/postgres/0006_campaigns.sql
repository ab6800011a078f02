-- Campaigns (a template sent to an audience through one channel) and their
-- recipients, one row per audience entry planned.

CREATE TABLE IF NOT EXISTS campaigns (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    name text NOT NULL,
    -- No foreign key: a campaign keeps a deleted channel's id (and stops).
    channel_id uuid NOT NULL,
    template_name text NOT NULL,
    template_language text NOT NULL,
    -- Variables (a JSON object).
    variables jsonb NOT NULL DEFAULT '{}',
    -- The Audience (JSON).
    audience jsonb NOT NULL,
    state text NOT NULL,
    scheduled_at timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    stop_reason text,
    -- Plan progress, moved only by plan_recipients.
    plan_planned bigint NOT NULL DEFAULT 0,
    plan_after uuid,
    plan_done boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS campaigns_account_idx ON campaigns (account_id, id);

CREATE TABLE IF NOT EXISTS campaign_recipients (
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    seq bigint NOT NULL,
    account_id uuid NOT NULL,
    -- No foreign key: the row keeps a deleted contact's id (no personal data).
    contact_id uuid,
    -- Only for a listed phone that is no contact.
    phone text,
    state text NOT NULL,
    reason text,
    message_id uuid,
    replied_at timestamptz,
    updated_at timestamptz NOT NULL,
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
