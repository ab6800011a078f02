//! [`AssistantService`]: the flows the API and automation call — drafts
//! for a contact's thread, sentiment, signals, summaries, usage, the
//! auto-reply setting and the stored drafts and analyses.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;

use crm_core::domain::assistant::{
    AiDraft, Answer, AutoReplyMode, AutoReplySetting, BusinessContext, Conversation, DraftRequest, LeadSignals,
    MAX_TURNS, MessageAnalysis, SentimentScore, Summary, UsageTotals, month_start, next_month_start,
};
use crm_core::{AccountId, Assistant, ChannelId, ContactId, Crm, DraftStream, Event, EventType, Result};

/// The most drafts or analyses a list returns.
pub const MAX_LIST: u32 = 100;

/// An account's usage this month and its budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageReport {
    /// The start of the period (the month, UTC).
    pub since: DateTime<Utc>,
    /// When the budget renews.
    pub renews_at: DateTime<Utc>,
    /// Per model.
    pub totals: UsageTotals,
    /// Tokens of every model.
    pub tokens: u64,
    /// Cost estimate of every model, in millionths of a US dollar.
    pub cost_micros: i64,
    /// The monthly token budget, if any.
    pub budget_tokens: Option<u64>,
    /// Tokens left this month, if there is a budget.
    pub remaining_tokens: Option<u64>,
}

/// The assistant's flows over a [`Crm`] and an [`Assistant`] (usually the
/// guarded stack of [`crate::guard`]).
#[derive(Debug, Clone)]
pub struct AssistantService {
    crm: Crm,
    assistant: Arc<dyn Assistant>,
    budget_tokens: Option<u64>,
}

impl AssistantService {
    /// The service; `budget_tokens` is only reported (the
    /// [`Metered`](crate::guard::Metered) wrapper enforces it).
    pub fn new(crm: Crm, assistant: Arc<dyn Assistant>, budget_tokens: Option<u64>) -> Self {
        AssistantService { crm, assistant, budget_tokens }
    }

    /// The assistant (its `name()` tells which one answers).
    pub fn assistant(&self) -> &Arc<dyn Assistant> {
        &self.assistant
    }

    /// The CRM service.
    pub fn crm(&self) -> &Crm {
        &self.crm
    }

    fn event(&self, account: AccountId, kind: EventType, payload: &impl Serialize) -> Event {
        Event::new(account, kind, payload, self.crm.clock().now())
    }

    /// A contact's recent thread as a conversation (`NotFound` for an unknown contact).
    pub async fn conversation(&self, account: AccountId, contact: ContactId) -> Result<Conversation> {
        let c = self.crm.get_contact(account, contact).await?;
        let recent = self.crm.store().recent_messages(account, contact, MAX_TURNS as u32 * 2).await?;
        Ok(Conversation::from_thread(Some(c.name), &recent))
    }

    /// The business context of a channel: its auto-reply setting's, else the
    /// account's, else the default (pt-BR, friendly).
    pub async fn context_for(&self, account: AccountId, channel: Option<ChannelId>) -> Result<BusinessContext> {
        let settings = self.crm.store().list_auto_replies(account).await?;
        Ok(AutoReplySetting::resolve(&settings, channel).map(|s| s.context.clone()).unwrap_or_default())
    }

    async fn draft_request(
        &self,
        account: AccountId,
        contact: ContactId,
        context: Option<BusinessContext>,
    ) -> Result<DraftRequest> {
        let conversation = self.conversation(account, contact).await?;
        let context = match context {
            Some(c) => c,
            None => self.context_for(account, None).await?,
        };
        Ok(DraftRequest { conversation, context })
    }

    /// A reply draft for a contact's thread — what an automation action
    /// calls. `Validation` on `conversation` when the thread has no customer message.
    pub async fn draft_reply(
        &self,
        account: AccountId,
        contact: ContactId,
        context: Option<BusinessContext>,
    ) -> Result<Answer<String>> {
        let request = self.draft_request(account, contact, context).await?;
        self.assistant.draft_reply(account, &request).await
    }

    /// The same draft, streamed.
    pub async fn draft_reply_stream(
        &self,
        account: AccountId,
        contact: ContactId,
        context: Option<BusinessContext>,
    ) -> Result<DraftStream> {
        let request = self.draft_request(account, contact, context).await?;
        self.assistant.draft_reply_stream(account, &request).await
    }

    /// The sentiment of a text.
    pub async fn sentiment(&self, account: AccountId, text: &str) -> Result<Answer<SentimentScore>> {
        self.assistant.classify_sentiment(account, text).await
    }

    /// Lead signals of a conversation.
    pub async fn signals(&self, account: AccountId, conversation: &Conversation) -> Result<Answer<LeadSignals>> {
        self.assistant.lead_signals(account, conversation).await
    }

    /// A summary of a contact's thread.
    pub async fn summarize(
        &self,
        account: AccountId,
        contact: ContactId,
        context: Option<BusinessContext>,
    ) -> Result<Answer<Summary>> {
        let request = self.draft_request(account, contact, context).await?;
        self.assistant.summarize(account, &request.conversation, &request.context).await
    }

    /// This month's usage of the account.
    pub async fn usage(&self, account: AccountId) -> Result<UsageReport> {
        let now = self.crm.clock().now();
        let since = month_start(now);
        let totals = self.crm.store().ai_usage_since(account, since).await?;
        let tokens = totals.tokens();
        Ok(UsageReport {
            since,
            renews_at: next_month_start(now),
            cost_micros: totals.cost_micros(),
            tokens,
            totals,
            budget_tokens: self.budget_tokens,
            remaining_tokens: self.budget_tokens.map(|b| b.saturating_sub(tokens)),
        })
    }

    /// Stores the auto-reply setting of the account (`channel: None`) or of
    /// one of its channels (`NotFound` for another account's channel).
    pub async fn set_auto_reply(
        &self,
        account: AccountId,
        channel: Option<ChannelId>,
        mode: AutoReplyMode,
        context: BusinessContext,
    ) -> Result<AutoReplySetting> {
        context.validate()?;
        if let Some(c) = channel {
            self.crm.get_channel(account, c).await?;
        }
        let setting = AutoReplySetting {
            account_id: account,
            channel_id: channel,
            mode,
            context,
            updated_at: self.crm.clock().now(),
        };
        let payload = serde_json::json!({ "channel_id": channel, "mode": mode });
        let event = self.event(account, EventType::AI_AUTO_REPLY_UPDATED, &payload);
        self.crm.store().put_auto_reply(&setting, &event).await
    }

    /// The account's auto-reply settings.
    pub async fn auto_replies(&self, account: AccountId) -> Result<Vec<AutoReplySetting>> {
        self.crm.store().list_auto_replies(account).await
    }

    /// The mode that applies to a channel.
    pub async fn auto_reply_mode(&self, account: AccountId, channel: Option<ChannelId>) -> Result<AutoReplyMode> {
        let settings = self.crm.store().list_auto_replies(account).await?;
        Ok(AutoReplySetting::resolve(&settings, channel).map(|s| s.mode).unwrap_or_default())
    }

    /// Stores a draft for an agent with its `ai.draft_suggested` event.
    pub async fn store_draft(
        &self,
        account: AccountId,
        contact: ContactId,
        message: Option<crm_core::MessageId>,
        answer: &Answer<String>,
    ) -> Result<AiDraft> {
        let draft = AiDraft {
            id: crm_core::AiDraftId::new(),
            account_id: account,
            contact_id: contact,
            message_id: message,
            text: answer.value.clone(),
            model: answer.model.clone(),
            created_at: self.crm.clock().now(),
        };
        let payload = serde_json::json!({ "draft_id": draft.id, "contact_id": contact, "message_id": message });
        let event = self.event(account, EventType::AI_DRAFT_SUGGESTED, &payload);
        self.crm.store().insert_ai_draft(&draft, &event).await?;
        Ok(draft)
    }

    /// A contact's stored drafts, newest first (`NotFound` for an unknown contact).
    pub async fn drafts(&self, account: AccountId, contact: ContactId) -> Result<Vec<AiDraft>> {
        self.crm.get_contact(account, contact).await?;
        self.crm.store().list_ai_drafts(account, contact, MAX_LIST).await
    }

    /// A contact's message analyses, newest first (`NotFound` for an unknown contact).
    pub async fn analyses(&self, account: AccountId, contact: ContactId) -> Result<Vec<MessageAnalysis>> {
        self.crm.get_contact(account, contact).await?;
        self.crm.store().list_ai_analyses(account, contact, MAX_LIST).await
    }

    /// Stores a message's analysis with its `message.analyzed` event.
    pub async fn record_analysis(&self, analysis: &MessageAnalysis) -> Result<()> {
        let event = self.event(analysis.account_id, EventType::MESSAGE_ANALYZED, analysis);
        self.crm.store().record_ai_analysis(analysis, &event).await
    }
}
