//! The `Assistant` port (reply drafts, sentiment, lead signals, summaries)
//! and the `AssistantStore` port (token usage, auto-reply settings, drafts).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt::Debug;

use crate::domain::assistant::{
    AiDraft, AiUsage, Answer, AutoReplySetting, BusinessContext, Conversation, DraftRequest, LeadSignals,
    MessageAnalysis, SentimentScore, Summary, TokenUsage, UsageTotals,
};
use crate::{AccountId, ContactId, Event, Message, Result};

/// One piece of a streamed draft.
#[derive(Debug, Clone, PartialEq)]
pub enum DraftChunk {
    /// More text, to append to what came before.
    Delta(String),
    /// The end: the whole draft with its model and usage. Nothing follows.
    Done(Answer<String>),
}

/// A draft as it is generated: [`DraftChunk::Delta`]s, then one
/// [`DraftChunk::Done`] (or an error, which ends the stream).
#[derive(Debug)]
pub struct DraftStream {
    rx: tokio::sync::mpsc::Receiver<Result<DraftChunk>>,
}

impl DraftStream {
    /// A stream fed through the returned sender (bounded: a slow reader
    /// slows the producer).
    pub fn channel(capacity: usize) -> (tokio::sync::mpsc::Sender<Result<DraftChunk>>, DraftStream) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        (tx, DraftStream { rx })
    }

    /// A stream of a draft already complete: one delta with the whole text, then `Done`.
    pub fn ready(answer: Answer<String>) -> DraftStream {
        let (tx, stream) = DraftStream::channel(2);
        let _ = tx.try_send(Ok(DraftChunk::Delta(answer.value.clone())));
        let _ = tx.try_send(Ok(DraftChunk::Done(answer)));
        stream
    }

    /// The next chunk; `None` once the stream ended.
    pub async fn next(&mut self) -> Option<Result<DraftChunk>> {
        self.rx.recv().await
    }

    /// Reads the stream to its end: the final answer, or the first error
    /// (a stream that ends without `Done` is a transient provider error).
    pub async fn collect(mut self) -> Result<Answer<String>> {
        while let Some(chunk) = self.next().await {
            if let DraftChunk::Done(answer) = chunk? {
                return Ok(answer);
            }
        }
        Err(crate::Error::Provider {
            provider: "assistant".into(),
            transient: true,
            code: Some("stream_ended".into()),
            message: "the draft stream ended before it was complete".into(),
            retry_after: None,
            source: None,
        })
    }
}

/// Drafts replies, classifies sentiment, extracts lead signals and
/// summarizes threads.
///
/// Contract (checked by `crm_core::testing::assistant` on every adapter):
/// - Every method takes the `AccountId` the call is for first (budgets,
///   limits and usage are per account); the adapter itself stores nothing.
/// - Input is checked before any work: [`DraftRequest::validate`],
///   [`Conversation::validate`], and texts through
///   [`check_text`](crate::domain::assistant::check_text); a failure is
///   [`Error::Validation`](crate::Error::Validation) and costs nothing.
/// - Customer text is data, never instructions: adapters that prompt a
///   model pass it only inside user-role content between delimiters, never
///   in the system prompt, and refuse (a permanent
///   [`Error::Provider`](crate::Error::Provider) with code
///   `system_prompt_leak`) a draft that repeats their system prompt.
/// - An answer that does not parse into the expected shape is a permanent
///   `Error::Provider` with code `unparseable_output` (or `refusal` when the
///   model refused) — never a guess.
/// - `draft_reply` returns a non-empty text in the context's language;
///   `classify_sentiment` a confidence in `[0, 1]`; `summarize` a non-empty text.
/// - Provider failures map to `Error::Provider` with `transient` set for
///   429/5xx/timeouts and `retry_after` when the provider said;
///   [`Answer::usage`] reports the tokens the provider counted.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crm_core::ports::assistant::Assistant;
/// use crm_core::domain::assistant::{Conversation, DraftRequest, Operation};
/// use crm_core::memory::ScriptedAssistant;
/// let assistant = ScriptedAssistant::new().with_draft("Temos sim! Quer reservar?");
/// let account = crm_core::AccountId::new();
/// let request = DraftRequest { conversation: Conversation::from_customer("Oi, tem bolo hoje?"), ..Default::default() };
/// let draft = assistant.draft_reply(account, &request).await?;
/// assert_eq!(draft.value, "Temos sim! Quer reservar?");
/// assert_eq!(assistant.calls(), vec![(account, Operation::Draft)]);
/// // bad input is refused before any work
/// assert!(assistant.draft_reply(account, &DraftRequest::default()).await.is_err());
/// # Ok::<(), crm_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait Assistant: Send + Sync + Debug + 'static {
    /// A short, stable name for health and usage (`openai`, `heuristic`, …).
    fn name(&self) -> &str;

    /// A reply to the conversation's last customer turn.
    async fn draft_reply(&self, account: AccountId, request: &DraftRequest) -> Result<Answer<String>>;

    /// The same draft as a stream of text pieces. The default answers
    /// [`draft_reply`](Assistant::draft_reply) as one piece; adapters that
    /// can stream override it. Validation errors come before the stream.
    async fn draft_reply_stream(&self, account: AccountId, request: &DraftRequest) -> Result<DraftStream> {
        Ok(DraftStream::ready(self.draft_reply(account, request).await?))
    }

    /// The sentiment of one text.
    async fn classify_sentiment(&self, account: AccountId, text: &str) -> Result<Answer<SentimentScore>>;

    /// Intent, interest and urgency of a conversation's customer turns.
    async fn lead_signals(&self, account: AccountId, conversation: &Conversation) -> Result<Answer<LeadSignals>>;

    /// A short summary of a conversation for an agent, in the context's language.
    async fn summarize(
        &self,
        account: AccountId,
        conversation: &Conversation,
        context: &BusinessContext,
    ) -> Result<Answer<Summary>>;
}

/// What the store keeps about the assistant: token usage per account, the
/// auto-reply settings and the drafts suggested for agents.
///
/// Contract (checked by `crm_core::testing::store::assistant`):
/// - `record_ai_usage` appends one row (no event: rows are many, like campaign
///   recipients); `ai_usage_since(account, since)` totals the account's rows
///   at or after `since`, one entry per model sorted by name (equal to
///   [`UsageTotals::from_rows`] over the same rows); other accounts' rows
///   never count.
/// - `put_auto_reply` stores the setting of (account, channel or none),
///   replacing the one stored for that pair, with its event in one
///   transaction, and returns it; `list_auto_replies` lists an account's
///   settings, the account-wide one (no channel) first, then by channel id.
/// - `insert_ai_draft` stores a draft with its event; the contact must exist
///   in the account ([`Error::NotFound`](crate::Error::NotFound) otherwise);
///   a draft's id is unique ([`Error::Conflict`](crate::Error::Conflict)).
///   `list_ai_drafts` lists a contact's drafts newest first, at most
///   `limit`. Deleting a contact deletes its drafts.
/// - `record_ai_analysis` stores the analysis of a message with its event,
///   replacing an earlier analysis of the same message (a worker may run
///   twice); the message must exist in the account (`NotFound`).
///   `list_ai_analyses` lists a contact's analyses, newest message first, at
///   most `limit`. Deleting a contact deletes its analyses.
/// - `recent_messages` lists a contact's last `limit` messages newest first
///   (`NotFound` when the contact is missing) — what a draft is written from.
#[async_trait]
pub trait AssistantStore: Send + Sync + Debug + 'static {
    /// Appends one usage row.
    async fn record_ai_usage(&self, usage: &AiUsage) -> Result<()>;

    /// The account's usage at or after `since`, per model.
    async fn ai_usage_since(&self, account: AccountId, since: DateTime<Utc>) -> Result<UsageTotals>;

    /// Stores (replaces) the auto-reply setting of its (account, channel).
    async fn put_auto_reply(&self, setting: &AutoReplySetting, event: &Event) -> Result<AutoReplySetting>;

    /// The account's auto-reply settings, account-wide first.
    async fn list_auto_replies(&self, account: AccountId) -> Result<Vec<AutoReplySetting>>;

    /// Stores a suggested draft.
    async fn insert_ai_draft(&self, draft: &AiDraft, event: &Event) -> Result<()>;

    /// A contact's drafts, newest first.
    async fn list_ai_drafts(&self, account: AccountId, contact: ContactId, limit: u32) -> Result<Vec<AiDraft>>;

    /// Stores (replaces) the analysis of a message.
    async fn record_ai_analysis(&self, analysis: &MessageAnalysis, event: &Event) -> Result<()>;

    /// A contact's message analyses, newest message first.
    async fn list_ai_analyses(
        &self,
        account: AccountId,
        contact: ContactId,
        limit: u32,
    ) -> Result<Vec<MessageAnalysis>>;

    /// A contact's last `limit` messages, newest first.
    async fn recent_messages(&self, account: AccountId, contact: ContactId, limit: u32) -> Result<Vec<Message>>;
}

/// Checks the event of an assistant-store mutation belongs to the account
/// (shared by every adapter).
pub fn check_ai_event(account: AccountId, event: &Event) -> Result<()> {
    crate::ports::store::check_event_account(account, event)
}

/// Adds two usages (saturating).
pub fn add_usage(a: TokenUsage, b: TokenUsage) -> TokenUsage {
    TokenUsage { input: a.input.saturating_add(b.input), output: a.output.saturating_add(b.output) }
}
