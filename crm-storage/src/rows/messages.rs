//! Decoding messages.

use crm_core::{AccountId, ContactId, Direction, Message, MessageId, MessageStatus, Result};

use super::{Columns, json_from};

/// A `messages` row.
pub(crate) fn message_row(r: &impl Columns) -> Result<Message> {
    Ok(Message {
        id: MessageId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        contact_id: ContactId::from_uuid(r.uuid("contact_id")?),
        direction: r.parsed("direction", Direction::parse)?,
        content: json_from("content", r.json("content")?)?,
        status: r.parsed("status", MessageStatus::parse)?,
        provider_message_id: r.opt_text("provider_message_id")?,
        error: r.opt_json("error")?.map(|e| json_from("error", e)).transpose()?,
        created_at: r.time("created_at")?,
        sent_at: r.opt_time("sent_at")?,
        delivered_at: r.opt_time("delivered_at")?,
        read_at: r.opt_time("read_at")?,
        failed_at: r.opt_time("failed_at")?,
        updated_at: r.time("updated_at")?,
    })
}
