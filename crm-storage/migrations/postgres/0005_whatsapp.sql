-- WhatsApp Cloud API: what a message carries beyond its content and status,
-- the per-channel customer-service window, and provider template parameters.
-- Independent of 0006 and later.

-- The quoted message ({message_id, provider_message_id}).
ALTER TABLE messages ADD COLUMN IF NOT EXISTS reply_to jsonb;
-- Set when a free-form send went out as a fallback template ({template, language, reason, original}).
ALTER TABLE messages ADD COLUMN IF NOT EXISTS fallback jsonb;
-- An inbound message's media file once fetched ({state, provider_media_id, mime_type, sha256, size, key, error}).
ALTER TABLE messages ADD COLUMN IF NOT EXISTS attachment jsonb;
-- The provider's pricing and conversation data from status reports.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS pricing jsonb;
-- When a contact last wrote on each channel (the customer-service window).
CREATE INDEX IF NOT EXISTS messages_inbound_channel_idx
    ON messages (account_id, contact_id, channel_id, created_at) WHERE direction = 'inbound';

-- A provider template's header and button parameters ([{name, kind, required}]), NULL when unknown.
ALTER TABLE templates ADD COLUMN IF NOT EXISTS parameters jsonb;
