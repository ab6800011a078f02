//! Messages: row decoding and the reads both dialects share.

use chrono::{DateTime, Utc};
use crm_core::{
    AccountId, ChannelId, ContactId, Direction, Error, Message, MessageId, MessageStatus, Page, PageRequest, Result,
};

use super::{Columns, Fetch, json_from, page_args};

/// A `messages` row.
pub(crate) fn message_row(r: &impl Columns) -> Result<Message> {
    Ok(Message {
        id: MessageId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        contact_id: ContactId::from_uuid(r.uuid("contact_id")?),
        direction: r.parsed("direction", Direction::parse)?,
        content: json_from("content", r.json("content")?)?,
        status: r.parsed("status", MessageStatus::parse)?,
        channel_id: r.opt_uuid("channel_id")?.map(ChannelId::from_uuid),
        client_reference: r.opt_text("client_reference")?,
        provider_message_id: r.opt_text("provider_message_id")?,
        error: r.opt_json("error")?.map(|e| json_from("error", e)).transpose()?,
        reply_to: r.opt_json("reply_to")?.map(|v| json_from("reply_to", v)).transpose()?,
        fallback: r.opt_json("fallback")?.map(|v| json_from("fallback", v)).transpose()?,
        attachment: r.opt_json("attachment")?.map(|v| json_from("attachment", v)).transpose()?,
        pricing: r.opt_json("pricing")?.map(|v| json_from("pricing", v)).transpose()?,
        created_at: r.time("created_at")?,
        sent_at: r.opt_time("sent_at")?,
        delivered_at: r.opt_time("delivered_at")?,
        read_at: r.opt_time("read_at")?,
        failed_at: r.opt_time("failed_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// [`MessageStore::get_message`](crm_core::MessageStore::get_message).
pub(crate) async fn get_message(db: &impl Fetch, account: AccountId, id: MessageId) -> Result<Message> {
    let sql = "SELECT * FROM messages WHERE id = $1 AND account_id = $2";
    let args = vec![id.into_uuid().into(), account.into_uuid().into()];
    let row = db.fetch_optional("reading a message", sql, args).await?;
    row.map(|r| message_row(&r)).transpose()?.ok_or(Error::not_found("message"))
}

/// [`MessageStore::find_message_by_provider_id`](crm_core::MessageStore::find_message_by_provider_id).
pub(crate) async fn find_message_by_provider_id(
    db: &impl Fetch,
    account: AccountId,
    provider_message_id: &str,
) -> Result<Option<Message>> {
    let sql = "SELECT * FROM messages WHERE account_id = $1 AND provider_message_id = $2";
    let args = vec![account.into_uuid().into(), provider_message_id.into()];
    let row = db.fetch_optional("reading a message", sql, args).await?;
    row.map(|r| message_row(&r)).transpose()
}

/// [`MessageStore::find_message_by_client_reference`](crm_core::MessageStore::find_message_by_client_reference).
pub(crate) async fn find_message_by_client_reference(
    db: &impl Fetch,
    account: AccountId,
    reference: &str,
) -> Result<Option<Message>> {
    let sql = "SELECT * FROM messages WHERE account_id = $1 AND client_reference = $2";
    let args = vec![account.into_uuid().into(), reference.into()];
    let row = db.fetch_optional("reading a message", sql, args).await?;
    row.map(|r| message_row(&r)).transpose()
}

/// [`MessageStore::list_thread`](crm_core::MessageStore::list_thread).
pub(crate) async fn list_thread(
    db: &impl Fetch,
    account: AccountId,
    contact: ContactId,
    page: &PageRequest,
) -> Result<Page<Message>> {
    let sql = "SELECT 1 FROM contacts WHERE id = $1 AND account_id = $2";
    let args = vec![contact.into_uuid().into(), account.into_uuid().into()];
    if db.fetch_optional("reading a contact", sql, args).await?.is_none() {
        return Err(Error::not_found("contact"));
    }
    let sql = "SELECT * FROM messages WHERE account_id = $1 AND contact_id = $2 AND id > $3 ORDER BY id LIMIT $4";
    let mut args = vec![account.into_uuid().into(), contact.into_uuid().into()];
    args.extend(page_args(page));
    let rows = db.fetch_all("listing a thread", sql, args).await?;
    let items = rows.iter().map(message_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |m| m.id.into_uuid()))
}

/// [`MessageStore::last_inbound_by_channel`](crm_core::MessageStore::last_inbound_by_channel)
/// (an index-only scan of `messages_inbound_channel_idx`).
pub(crate) async fn last_inbound_by_channel(
    db: &impl Fetch,
    account: AccountId,
    contact: ContactId,
) -> Result<Vec<(Option<ChannelId>, DateTime<Utc>)>> {
    let sql = "SELECT channel_id, MAX(created_at) AS last_at FROM messages \
               WHERE account_id = $1 AND contact_id = $2 AND direction = 'inbound' GROUP BY channel_id";
    let args = vec![account.into_uuid().into(), contact.into_uuid().into()];
    let rows = db.fetch_all("reading a contact's last inbound times", sql, args).await?;
    rows.iter().map(|r| Ok((r.opt_uuid("channel_id")?.map(ChannelId::from_uuid), r.time("last_at")?))).collect()
}
