-- What WhatsApp channels learned of phone numbers (issue #9): the LID
-- (`…@lid`, WhatsApp's privacy id) that addresses a phone, and the WhatsApp
-- id WhatsApp answered exists for it (for a Brazilian mobile, the variant
-- with or without the 9th digit). Phones in canonical E.164. Rows go with
-- their channel.
CREATE TABLE IF NOT EXISTS whatsapp_ids (
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    phone text NOT NULL,
    lid text,
    whatsapp_id text,
    PRIMARY KEY (channel_id, phone)
);
-- A LID addresses one phone per channel.
CREATE UNIQUE INDEX IF NOT EXISTS whatsapp_ids_lid ON whatsapp_ids (channel_id, lid) WHERE lid IS NOT NULL;
