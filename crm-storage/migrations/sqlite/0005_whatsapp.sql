-- WhatsApp Cloud API: what a message carries beyond its content and status,
-- the per-channel customer-service window, and provider template parameters.
-- Independent of 0006 and later.

-- The quoted message ({message_id, provider_message_id}), JSON text.
ALTER TABLE messages ADD COLUMN reply_to TEXT;
-- Set when a free-form send went out as a fallback template ({template, language, reason, original}).
ALTER TABLE messages ADD COLUMN fallback TEXT;
-- An inbound message's media file once fetched ({state, provider_media_id, mime_type, sha256, size, key, error}).
ALTER TABLE messages ADD COLUMN attachment TEXT;
-- The provider's pricing and conversation data from status reports.
ALTER TABLE messages ADD COLUMN pricing TEXT;
-- When a contact last wrote on each channel (the customer-service window).
CREATE INDEX IF NOT EXISTS messages_inbound_channel_idx
    ON messages (account_id, contact_id, channel_id, created_at) WHERE direction = 'inbound';

-- A provider template's header and button parameters ([{name, kind, required}]), NULL when unknown.
ALTER TABLE templates ADD COLUMN parameters TEXT;
