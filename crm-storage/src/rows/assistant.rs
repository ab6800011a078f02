//! The assistant's tables: row decoding and the reads both dialects share.

use crm_core::domain::assistant::{AiDraft, AutoReplyMode, AutoReplySetting, MessageAnalysis, ModelUsage, UsageTotals};
use crm_core::{AccountId, AiDraftId, ChannelId, ContactId, Error, Message, MessageId, Result};

use super::{Columns, Fetch, json_from};

/// The `scope` key of an auto-reply setting: `''` account-wide, else the channel id.
pub(crate) fn auto_reply_scope(channel: Option<ChannelId>) -> String {
    channel.map(|c| c.to_string()).unwrap_or_default()
}

/// An `ai_auto_replies` row.
pub(crate) fn auto_reply_row(r: &impl Columns) -> Result<AutoReplySetting> {
    Ok(AutoReplySetting {
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        channel_id: r.opt_uuid("channel_id")?.map(ChannelId::from_uuid),
        mode: r.parsed("mode", AutoReplyMode::parse)?,
        context: json_from("context", r.json("context")?)?,
        updated_at: r.time("updated_at")?,
    })
}

/// An `ai_drafts` row.
pub(crate) fn draft_row(r: &impl Columns) -> Result<AiDraft> {
    Ok(AiDraft {
        id: AiDraftId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        contact_id: ContactId::from_uuid(r.uuid("contact_id")?),
        message_id: r.opt_uuid("message_id")?.map(MessageId::from_uuid),
        text: r.text("text")?,
        model: r.text("model")?,
        created_at: r.time("created_at")?,
    })
}

/// The per-model totals rows of `ai_usage_since` (`model`, `requests`,
/// `input_tokens`, `output_tokens`, `cost_micros`), sorted by model.
pub(crate) fn usage_totals<R: Columns>(rows: &[R]) -> Result<UsageTotals> {
    fn count(r: &impl Columns, col: &'static str) -> Result<u64> {
        r.int(col).map(|n| u64::try_from(n).unwrap_or(0))
    }
    let models = rows
        .iter()
        .map(|r| {
            Ok(ModelUsage {
                model: r.text("model")?,
                requests: count(r, "requests")?,
                input_tokens: count(r, "input_tokens")?,
                output_tokens: count(r, "output_tokens")?,
                cost_micros: r.int("cost_micros")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(UsageTotals { models })
}

/// [`AssistantStore::list_auto_replies`](crm_core::AssistantStore::list_auto_replies).
pub(crate) async fn list_auto_replies(db: &impl Fetch, account: AccountId) -> Result<Vec<AutoReplySetting>> {
    let sql = "SELECT * FROM ai_auto_replies WHERE account_id = $1 ORDER BY scope";
    let rows = db.fetch_all("listing auto-reply settings", sql, vec![account.into_uuid().into()]).await?;
    rows.iter().map(auto_reply_row).collect()
}

/// [`AssistantStore::list_ai_drafts`](crm_core::AssistantStore::list_ai_drafts).
pub(crate) async fn list_ai_drafts(
    db: &impl Fetch,
    account: AccountId,
    contact: ContactId,
    limit: u32,
) -> Result<Vec<AiDraft>> {
    let sql = "SELECT * FROM ai_drafts WHERE account_id = $1 AND contact_id = $2 ORDER BY id DESC LIMIT $3";
    let args = vec![account.into_uuid().into(), contact.into_uuid().into(), i64::from(limit).into()];
    let rows = db.fetch_all("listing drafts", sql, args).await?;
    rows.iter().map(draft_row).collect()
}

/// [`AssistantStore::recent_messages`](crm_core::AssistantStore::recent_messages).
pub(crate) async fn recent_messages(
    db: &impl Fetch,
    account: AccountId,
    contact: ContactId,
    limit: u32,
) -> Result<Vec<Message>> {
    let sql = "SELECT 1 FROM contacts WHERE id = $1 AND account_id = $2";
    let args = vec![contact.into_uuid().into(), account.into_uuid().into()];
    if db.fetch_optional("reading a contact", sql, args).await?.is_none() {
        return Err(Error::not_found("contact"));
    }
    let sql = "SELECT * FROM messages WHERE account_id = $1 AND contact_id = $2 ORDER BY id DESC LIMIT $3";
    let args = vec![account.into_uuid().into(), contact.into_uuid().into(), i64::from(limit).into()];
    let rows = db.fetch_all("reading recent messages", sql, args).await?;
    rows.iter().map(super::messages::message_row).collect()
}

/// [`AssistantStore::list_ai_analyses`](crm_core::AssistantStore::list_ai_analyses).
pub(crate) async fn list_ai_analyses(
    db: &impl Fetch,
    account: AccountId,
    contact: ContactId,
    limit: u32,
) -> Result<Vec<MessageAnalysis>> {
    let sql = "SELECT analysis FROM ai_analyses WHERE account_id = $1 AND contact_id = $2 \
               ORDER BY message_id DESC LIMIT $3";
    let args = vec![account.into_uuid().into(), contact.into_uuid().into(), i64::from(limit).into()];
    let rows = db.fetch_all("listing message analyses", sql, args).await?;
    rows.iter().map(|r| json_from("analysis", r.json("analysis")?)).collect()
}
