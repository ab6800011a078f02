//! [`AssistantStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::domain::assistant::{AiDraft, AiUsage, AutoReplySetting, MessageAnalysis, UsageTotals};
use crate::ports::assistant::{AssistantStore, check_ai_event};
use crate::{AccountId, ContactId, Error, Event, Message, Result};

#[async_trait]
impl AssistantStore for MemoryStore {
    async fn record_ai_usage(&self, usage: &AiUsage) -> Result<()> {
        self.lock().ai_usage.push(usage.clone());
        Ok(())
    }

    async fn ai_usage_since(&self, account: AccountId, since: DateTime<Utc>) -> Result<UsageTotals> {
        let s = self.lock();
        Ok(UsageTotals::from_rows(s.ai_usage.iter().filter(|u| u.account_id == account && u.at >= since)))
    }

    async fn put_auto_reply(&self, setting: &AutoReplySetting, event: &Event) -> Result<AutoReplySetting> {
        check_ai_event(setting.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        s.auto_replies.insert((setting.account_id, setting.channel_id), setting.clone());
        s.append(event);
        Ok(setting.clone())
    }

    async fn list_auto_replies(&self, account: AccountId) -> Result<Vec<AutoReplySetting>> {
        let s = self.lock();
        Ok(s.auto_replies
            .range((account, None)..)
            .take_while(|((a, _), _)| *a == account)
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn insert_ai_draft(&self, draft: &AiDraft, event: &Event) -> Result<()> {
        check_ai_event(draft.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        s.contact(draft.account_id, draft.contact_id)?;
        if s.ai_drafts.contains_key(&draft.id) {
            return Err(Error::conflict("ai_draft", "id already exists"));
        }
        s.ai_drafts.insert(draft.id, draft.clone());
        s.append(event);
        Ok(())
    }

    async fn list_ai_drafts(&self, account: AccountId, contact: ContactId, limit: u32) -> Result<Vec<AiDraft>> {
        let s = self.lock();
        let found = s.ai_drafts.values().rev().filter(|d| d.account_id == account && d.contact_id == contact);
        Ok(found.take(limit as usize).cloned().collect())
    }

    async fn record_ai_analysis(&self, analysis: &MessageAnalysis, event: &Event) -> Result<()> {
        check_ai_event(analysis.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let found = s.messages.get(&analysis.message_id).filter(|m| m.account_id == analysis.account_id);
        if found.is_none_or(|m| m.contact_id != analysis.contact_id) {
            return Err(Error::not_found("message"));
        }
        s.ai_analyses.insert(analysis.message_id, analysis.clone());
        s.append(event);
        Ok(())
    }

    async fn list_ai_analyses(
        &self,
        account: AccountId,
        contact: ContactId,
        limit: u32,
    ) -> Result<Vec<MessageAnalysis>> {
        let s = self.lock();
        let found = s.ai_analyses.values().rev().filter(|a| a.account_id == account && a.contact_id == contact);
        Ok(found.take(limit as usize).cloned().collect())
    }

    async fn recent_messages(&self, account: AccountId, contact: ContactId, limit: u32) -> Result<Vec<Message>> {
        let s = self.lock();
        s.contact(account, contact)?;
        let found = s.messages.values().rev().filter(|m| m.account_id == account && m.contact_id == contact);
        Ok(found.take(limit as usize).cloned().collect())
    }
}
