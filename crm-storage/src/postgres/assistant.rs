//! [`AssistantStore`] over PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crm_core::domain::assistant::{AiDraft, AiUsage, AutoReplySetting, MessageAnalysis, UsageTotals};
use crm_core::ports::assistant::{AssistantStore, check_ai_event};
use crm_core::{AccountId, ContactId, Error, Event, Message, Result};

use super::{PgStore, append, commit, exists};
use crate::error::db;
use crate::rows::assistant::{auto_reply_scope, usage_totals};

#[async_trait]
impl AssistantStore for PgStore {
    async fn record_ai_usage(&self, u: &AiUsage) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO ai_usage (account_id, at, operation, model, input_tokens, output_tokens, cost_micros) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(u.account_id.into_uuid())
        .bind(u.at)
        .bind(u.operation.as_str())
        .bind(&u.model)
        .bind(i64::from(u.usage.input))
        .bind(i64::from(u.usage.output))
        .bind(u.cost_micros)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("recording assistant usage", e))?;
        commit(tx).await
    }

    async fn ai_usage_since(&self, account: AccountId, since: DateTime<Utc>) -> Result<UsageTotals> {
        let rows = sqlx::query(
            "SELECT model, COUNT(*) AS requests, SUM(input_tokens)::bigint AS input_tokens, \
             SUM(output_tokens)::bigint AS output_tokens, SUM(cost_micros)::bigint AS cost_micros \
             FROM ai_usage WHERE account_id = $1 AND at >= $2 GROUP BY model ORDER BY model",
        )
        .bind(account.into_uuid())
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("reading assistant usage", e))?;
        usage_totals(&rows)
    }

    async fn put_auto_reply(&self, s: &AutoReplySetting, event: &Event) -> Result<AutoReplySetting> {
        check_ai_event(s.account_id, event)?;
        let context = crate::rows::to_json("context", &s.context)?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO ai_auto_replies (account_id, scope, channel_id, mode, context, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, scope) DO UPDATE SET \
             mode = excluded.mode, context = excluded.context, updated_at = excluded.updated_at",
        )
        .bind(s.account_id.into_uuid())
        .bind(auto_reply_scope(s.channel_id))
        .bind(s.channel_id.map(|c| c.into_uuid()))
        .bind(s.mode.as_str())
        .bind(context)
        .bind(s.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("storing an auto-reply setting", e))?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(s.clone())
    }

    async fn list_auto_replies(&self, account: AccountId) -> Result<Vec<AutoReplySetting>> {
        crate::rows::assistant::list_auto_replies(self, account).await
    }

    async fn insert_ai_draft(&self, d: &AiDraft, event: &Event) -> Result<()> {
        check_ai_event(d.account_id, event)?;
        let mut tx = self.write().await?;
        let sql = "SELECT 1 FROM contacts WHERE id = $1 AND account_id = $2";
        if !exists(&mut tx, sql, d.contact_id.into_uuid(), d.account_id).await? {
            return Err(Error::not_found("contact"));
        }
        sqlx::query(
            "INSERT INTO ai_drafts (id, account_id, contact_id, message_id, text, model, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(d.id.into_uuid())
        .bind(d.account_id.into_uuid())
        .bind(d.contact_id.into_uuid())
        .bind(d.message_id.map(|m| m.into_uuid()))
        .bind(&d.text)
        .bind(&d.model)
        .bind(d.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("storing a draft", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn list_ai_drafts(&self, account: AccountId, contact: ContactId, limit: u32) -> Result<Vec<AiDraft>> {
        crate::rows::assistant::list_ai_drafts(self, account, contact, limit).await
    }

    async fn record_ai_analysis(&self, a: &MessageAnalysis, event: &Event) -> Result<()> {
        check_ai_event(a.account_id, event)?;
        let analysis = crate::rows::to_json("analysis", a)?;
        let mut tx = self.write().await?;
        let found = sqlx::query("SELECT 1 FROM messages WHERE id = $1 AND account_id = $2 AND contact_id = $3")
            .bind(a.message_id.into_uuid())
            .bind(a.account_id.into_uuid())
            .bind(a.contact_id.into_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("looking up a message", e))?;
        if found.is_none() {
            return Err(Error::not_found("message"));
        }
        sqlx::query(
            "INSERT INTO ai_analyses (message_id, account_id, contact_id, analysis, analyzed_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (message_id) DO UPDATE SET analysis = excluded.analysis, analyzed_at = excluded.analyzed_at",
        )
        .bind(a.message_id.into_uuid())
        .bind(a.account_id.into_uuid())
        .bind(a.contact_id.into_uuid())
        .bind(analysis)
        .bind(a.analyzed_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("storing a message analysis", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn list_ai_analyses(
        &self,
        account: AccountId,
        contact: ContactId,
        limit: u32,
    ) -> Result<Vec<MessageAnalysis>> {
        crate::rows::assistant::list_ai_analyses(self, account, contact, limit).await
    }

    async fn recent_messages(&self, account: AccountId, contact: ContactId, limit: u32) -> Result<Vec<Message>> {
        crate::rows::assistant::recent_messages(self, account, contact, limit).await
    }
}
