//! [`ScriptedAssistant`]: an [`Assistant`] double with canned answers that
//! records its calls and fails on request.

use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::Mutex;

use crate::domain::assistant::{
    Answer, BusinessContext, Conversation, DraftRequest, Intent, LeadSignals, Level, Operation, Sentiment,
    SentimentScore, Summary, TokenUsage, check_text,
};
use crate::ports::assistant::Assistant;
use crate::{AccountId, Error, Result};

/// Canned answers, recorded calls, queued failures. Validates input like
/// every adapter (so it passes `crm_core::testing::assistant`).
#[derive(Debug)]
pub struct ScriptedAssistant {
    draft: String,
    sentiment: SentimentScore,
    usage: TokenUsage,
    model: String,
    calls: Mutex<Vec<(AccountId, Operation)>>,
    failures: Mutex<VecDeque<Error>>,
}

impl Default for ScriptedAssistant {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptedAssistant {
    /// Answers "Olá! Como posso ajudar?", neutral sentiment, 10 + 5 tokens, model `scripted`.
    pub fn new() -> Self {
        ScriptedAssistant {
            draft: "Olá! Como posso ajudar?".into(),
            sentiment: SentimentScore { sentiment: Sentiment::Neutral, confidence: 0.5 },
            usage: TokenUsage { input: 10, output: 5 },
            model: "scripted".into(),
            calls: Mutex::new(Vec::new()),
            failures: Mutex::new(VecDeque::new()),
        }
    }

    /// The draft text it answers.
    pub fn with_draft(mut self, text: impl Into<String>) -> Self {
        self.draft = text.into();
        self
    }

    /// The sentiment it answers.
    pub fn with_sentiment(mut self, sentiment: Sentiment, confidence: f32) -> Self {
        self.sentiment = SentimentScore { sentiment, confidence };
        self
    }

    /// The usage and model it reports.
    pub fn with_usage(mut self, model: impl Into<String>, usage: TokenUsage) -> Self {
        self.model = model.into();
        self.usage = usage;
        self
    }

    /// The next call (of any method, after validation) fails with `error`.
    pub fn fail_next(&self, error: Error) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).push_back(error);
    }

    /// Every call that got past validation, in order.
    pub fn calls(&self) -> Vec<(AccountId, Operation)> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn call<T>(&self, account: AccountId, op: Operation, value: T) -> Result<Answer<T>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push((account, op));
        if let Some(e) = self.failures.lock().unwrap_or_else(|p| p.into_inner()).pop_front() {
            return Err(e);
        }
        Ok(Answer::new(value, self.model.clone(), self.usage))
    }
}

#[async_trait]
impl Assistant for ScriptedAssistant {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn draft_reply(&self, account: AccountId, request: &DraftRequest) -> Result<Answer<String>> {
        request.validate()?;
        self.call(account, Operation::Draft, self.draft.clone())
    }

    async fn classify_sentiment(&self, account: AccountId, text: &str) -> Result<Answer<SentimentScore>> {
        check_text("text", text)?;
        self.call(account, Operation::Sentiment, self.sentiment)
    }

    async fn lead_signals(&self, account: AccountId, conversation: &Conversation) -> Result<Answer<LeadSignals>> {
        conversation.validate()?;
        let signals = LeadSignals { intent: Intent::Other, interest: Level::Low, urgency: Level::Low, confidence: 0.5 };
        self.call(account, Operation::Signals, signals)
    }

    async fn summarize(
        &self,
        account: AccountId,
        conversation: &Conversation,
        context: &BusinessContext,
    ) -> Result<Answer<Summary>> {
        conversation.validate()?;
        context.validate()?;
        let text = format!("{} mensagens.", conversation.turns.len());
        let summary = Summary { text, next_steps: Vec::new(), sentiment: self.sentiment.sentiment };
        self.call(account, Operation::Summary, summary)
    }
}
