//! What the [`Assistant`](crate::ports::assistant::Assistant) port works on:
//! conversations, business context, sentiment, lead signals, drafts and
//! summaries; and what the store keeps about it: token usage, auto-reply
//! settings and suggested drafts.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::{AccountId, AiDraftId, ChannelId, ContactId, Direction, Error, Message, MessageId, Result};

/// Longest text the assistant accepts in one message or request (characters).
pub const MAX_AI_TEXT_CHARS: usize = 4_096;
/// Most turns of a conversation sent to the assistant (the most recent ones).
pub const MAX_TURNS: usize = 20;
/// Longest business instructions (characters).
pub const MAX_INSTRUCTIONS_CHARS: usize = 1_000;

/// The tone replies are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    /// Warm and close (the default for small businesses on WhatsApp).
    #[default]
    Friendly,
    /// Polite and formal.
    Formal,
    /// Short and relaxed.
    Casual,
}

impl Tone {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Friendly => "friendly",
            Tone::Formal => "formal",
            Tone::Casual => "casual",
        }
    }
}

/// What the business is and how it speaks: given to every draft. Read
/// only from a JSON object (serde would otherwise fill the fields from an
/// array, in order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, remote = "Self")]
pub struct BusinessContext {
    /// The business's name, as customers know it.
    pub business_name: Option<String>,
    /// What it does, e.g. `"bakery"`, `"clothing store"`.
    pub business_type: Option<String>,
    /// The tone of replies.
    pub tone: Tone,
    /// BCP 47 language of replies; `pt-BR` by default.
    pub language: String,
    /// The business's own instructions (opening hours, policies); the
    /// business's text, never the customer's.
    pub instructions: Option<String>,
}

impl Serialize for BusinessContext {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        Self::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for BusinessContext {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let object = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        Self::deserialize(serde_json::Value::Object(object)).map_err(serde::de::Error::custom)
    }
}

impl Default for BusinessContext {
    fn default() -> Self {
        BusinessContext {
            business_name: None,
            business_type: None,
            tone: Tone::default(),
            language: "pt-BR".into(),
            instructions: None,
        }
    }
}

impl BusinessContext {
    /// Checks lengths and the language tag: [`Error::Validation`] names the field.
    pub fn validate(&self) -> Result<()> {
        check_len("context.business_name", self.business_name.as_deref(), 200)?;
        check_len("context.business_type", self.business_type.as_deref(), 200)?;
        check_len("context.instructions", self.instructions.as_deref(), MAX_INSTRUCTIONS_CHARS)?;
        let lang = &self.language;
        let ok = (2..=16).contains(&lang.len()) && lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(Error::validation("context.language", "a BCP 47 tag such as pt-BR or en"));
        }
        Ok(())
    }

    /// Whether replies are in Portuguese (any `pt` tag).
    pub fn is_portuguese(&self) -> bool {
        self.language.to_ascii_lowercase().starts_with("pt")
    }
}

fn check_len(field: &'static str, value: Option<&str>, max: usize) -> Result<()> {
    match value {
        Some(v) if v.chars().count() > max => Err(Error::validation(field, format!("at most {max} characters"))),
        _ => Ok(()),
    }
}

/// Who said a turn of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// The contact (customer text: always data, never instructions).
    Customer,
    /// The business (an agent or an earlier automatic reply).
    Business,
}

/// One message of a conversation, as the assistant sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Turn {
    /// Who said it.
    pub speaker: Speaker,
    /// The text (a caption or a placeholder such as `[image]` for media).
    pub text: String,
}

/// The recent messages of a thread and who the contact is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversation {
    /// The contact's name, if known.
    pub contact_name: Option<String>,
    /// Oldest first; at most [`MAX_TURNS`].
    pub turns: Vec<Turn>,
}

impl Conversation {
    /// A conversation of one customer message.
    pub fn from_customer(text: impl Into<String>) -> Self {
        Conversation { contact_name: None, turns: vec![Turn { speaker: Speaker::Customer, text: text.into() }] }
    }

    /// The conversation of a thread: `messages` newest first (as a thread
    /// page lists them); keeps the [`MAX_TURNS`] most recent with text,
    /// oldest first, each clipped to [`MAX_AI_TEXT_CHARS`].
    pub fn from_thread(contact_name: Option<String>, messages: &[Message]) -> Self {
        let mut turns: Vec<Turn> = messages
            .iter()
            .filter_map(|m| {
                let text = message_text(m)?;
                let speaker = if m.direction == Direction::Inbound { Speaker::Customer } else { Speaker::Business };
                Some(Turn { speaker, text: clip(&text, MAX_AI_TEXT_CHARS) })
            })
            .take(MAX_TURNS)
            .collect();
        turns.reverse();
        Conversation { contact_name, turns }
    }

    /// Checks the conversation: at least one turn, at most [`MAX_TURNS`],
    /// no empty or over-long text.
    pub fn validate(&self) -> Result<()> {
        if self.turns.is_empty() {
            return Err(Error::validation("conversation", "no messages to work on"));
        }
        if self.turns.len() > MAX_TURNS {
            return Err(Error::validation("conversation", format!("at most {MAX_TURNS} messages")));
        }
        for t in &self.turns {
            check_text("conversation.text", &t.text)?;
        }
        check_len("conversation.contact_name", self.contact_name.as_deref(), 200)
    }

    /// The last customer turn's text, if any.
    pub fn last_customer_text(&self) -> Option<&str> {
        self.turns.iter().rev().find(|t| t.speaker == Speaker::Customer).map(|t| t.text.as_str())
    }

    /// Every customer turn's text, joined by newlines.
    pub fn customer_text(&self) -> String {
        let parts: Vec<&str> =
            self.turns.iter().filter(|t| t.speaker == Speaker::Customer).map(|t| t.text.as_str()).collect();
        parts.join("\n")
    }
}

/// Checks one text given to the assistant: not blank, at most [`MAX_AI_TEXT_CHARS`].
pub fn check_text(field: &'static str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::validation(field, "must not be empty"));
    }
    if text.chars().count() > MAX_AI_TEXT_CHARS {
        return Err(Error::validation(field, format!("at most {MAX_AI_TEXT_CHARS} characters")));
    }
    Ok(())
}

fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The text of a message for the assistant: its text, a caption, or a
/// bracketed placeholder for other kinds; `None` for reactions.
pub fn message_text(m: &Message) -> Option<String> {
    let value = serde_json::to_value(&m.content).ok()?;
    let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or("message").to_string();
    if kind == "reaction" {
        return None;
    }
    for key in ["body", "text", "caption"] {
        if let Some(s) = value.get(key).and_then(|v| v.as_str()).filter(|s| !s.trim().is_empty()) {
            return Some(s.to_string());
        }
    }
    Some(format!("[{kind}]"))
}

/// What a reply draft is asked for.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DraftRequest {
    /// The thread so far; the reply answers its last customer turn.
    pub conversation: Conversation,
    /// Who is answering and how.
    pub context: BusinessContext,
}

impl DraftRequest {
    /// Checks the conversation and the context; a conversation with no
    /// customer turn is [`Error::Validation`] on `conversation`.
    pub fn validate(&self) -> Result<()> {
        self.conversation.validate()?;
        self.context.validate()?;
        if self.conversation.last_customer_text().is_none() {
            return Err(Error::validation("conversation", "no customer message to reply to"));
        }
        Ok(())
    }
}

/// The polarity of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Sentiment {
    /// Praise, thanks, satisfaction.
    Positive,
    /// Complaints, frustration, anger.
    Negative,
    /// Questions, information, neither.
    Neutral,
}

impl Sentiment {
    /// Every value, in a fixed order.
    pub const ALL: [Sentiment; 3] = [Sentiment::Positive, Sentiment::Negative, Sentiment::Neutral];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Sentiment::Positive => "positive",
            Sentiment::Negative => "negative",
            Sentiment::Neutral => "neutral",
        }
    }

    /// Parses a wire name (also the seed's Portuguese `positivo`/`negativo`/`neutro`).
    pub fn parse(s: &str) -> Option<Sentiment> {
        match s.trim().to_ascii_lowercase().as_str() {
            "positive" | "positivo" => Some(Sentiment::Positive),
            "negative" | "negativo" => Some(Sentiment::Negative),
            "neutral" | "neutro" => Some(Sentiment::Neutral),
            _ => None,
        }
    }
}

/// A sentiment with the classifier's confidence in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SentimentScore {
    /// The polarity.
    pub sentiment: Sentiment,
    /// Confidence in `[0, 1]`.
    pub confidence: f32,
}

impl SentimentScore {
    /// A score; [`Error::Validation`] unless `confidence` is finite and in `[0, 1]`.
    pub fn new(sentiment: Sentiment, confidence: f32) -> Result<Self> {
        check_unit("confidence", confidence)?;
        Ok(SentimentScore { sentiment, confidence })
    }
}

fn check_unit(field: &'static str, v: f32) -> Result<()> {
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        return Err(Error::validation(field, "a number between 0 and 1"));
    }
    Ok(())
}

/// What the customer wants, for lead scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Wants to buy or order.
    Purchase,
    /// Asks about prices, payment, discounts.
    PriceInquiry,
    /// Asks about availability, sizes, product details.
    ProductInquiry,
    /// Asks about an order's delivery or shipping.
    Delivery,
    /// Reports a problem and wants help.
    Support,
    /// Complains.
    Complaint,
    /// Wants to cancel, return or get a refund.
    Cancellation,
    /// Says hello, thanks, bye.
    Greeting,
    /// None of the above.
    Other,
}

impl Intent {
    /// Every value, in a fixed order (the JSON schema's enum).
    pub const ALL: [Intent; 9] = [
        Intent::Purchase,
        Intent::PriceInquiry,
        Intent::ProductInquiry,
        Intent::Delivery,
        Intent::Support,
        Intent::Complaint,
        Intent::Cancellation,
        Intent::Greeting,
        Intent::Other,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Purchase => "purchase",
            Intent::PriceInquiry => "price_inquiry",
            Intent::ProductInquiry => "product_inquiry",
            Intent::Delivery => "delivery",
            Intent::Support => "support",
            Intent::Complaint => "complaint",
            Intent::Cancellation => "cancellation",
            Intent::Greeting => "greeting",
            Intent::Other => "other",
        }
    }
}

/// A low/medium/high level (interest, urgency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

impl Level {
    /// Every value.
    pub const ALL: [Level; 3] = [Level::Low, Level::Medium, Level::High];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
        }
    }
}

/// Lead signals of a conversation: what lead scoring uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeadSignals {
    /// The main intent.
    pub intent: Intent,
    /// How interested in buying the customer is.
    pub interest: Level,
    /// How soon they need an answer or the product.
    pub urgency: Level,
    /// Confidence in `[0, 1]`.
    pub confidence: f32,
}

impl LeadSignals {
    /// Checks the confidence.
    pub fn validate(&self) -> Result<()> {
        check_unit("confidence", self.confidence)
    }

    /// A lead-score suggestion in `0..=100` from interest, urgency and intent.
    pub fn score(&self) -> u8 {
        let level = |l: Level| match l {
            Level::Low => 0u8,
            Level::Medium => 20,
            Level::High => 40,
        };
        let intent = match self.intent {
            Intent::Purchase => 20u8,
            Intent::PriceInquiry | Intent::ProductInquiry => 12,
            Intent::Delivery | Intent::Support | Intent::Greeting | Intent::Other => 4,
            Intent::Complaint | Intent::Cancellation => 0,
        };
        (level(self.interest) + level(self.urgency) / 2 + intent).min(100)
    }
}

/// A short summary of a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    /// A few sentences.
    pub text: String,
    /// What the business should do next, if anything.
    pub next_steps: Vec<String>,
    /// The thread's overall sentiment.
    pub sentiment: Sentiment,
}

/// Tokens one call used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenUsage {
    /// Prompt tokens.
    pub input: u32,
    /// Completion tokens.
    pub output: u32,
}

impl TokenUsage {
    /// Input plus output.
    pub fn total(&self) -> u64 {
        u64::from(self.input) + u64::from(self.output)
    }
}

/// One answer of an assistant: the value, who produced it and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer<T> {
    /// The result.
    pub value: T,
    /// The model (or `heuristic`).
    pub model: String,
    /// Tokens used (zero for the heuristic).
    pub usage: TokenUsage,
    /// Set when a fallback answered because the first assistant failed: why
    /// (the error's kind, never its text).
    pub fallback: Option<String>,
}

impl<T> Answer<T> {
    /// An answer with no fallback.
    pub fn new(value: T, model: impl Into<String>, usage: TokenUsage) -> Self {
        Answer { value, model: model.into(), usage, fallback: None }
    }

    /// The same answer carrying another value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        Answer { value: f(self.value), model: self.model, usage: self.usage, fallback: self.fallback }
    }
}

/// What an assistant call was for (usage rows, budgets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// A reply draft.
    Draft,
    /// Sentiment.
    Sentiment,
    /// Lead signals.
    Signals,
    /// A summary.
    Summary,
}

impl Operation {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Draft => "draft",
            Operation::Sentiment => "sentiment",
            Operation::Signals => "signals",
            Operation::Summary => "summary",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "draft" => Operation::Draft,
            "sentiment" => Operation::Sentiment,
            "signals" => Operation::Signals,
            "summary" => Operation::Summary,
            _ => return Err(Error::validation("operation", format!("unknown operation {s:?}"))),
        })
    }
}

/// One recorded assistant call: tokens and the cost estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiUsage {
    /// The account billed.
    pub account_id: AccountId,
    /// When.
    pub at: DateTime<Utc>,
    /// What for.
    pub operation: Operation,
    /// The model that answered.
    pub model: String,
    /// Tokens used.
    pub usage: TokenUsage,
    /// The cost estimate in millionths of a US dollar.
    pub cost_micros: i64,
}

/// Usage totals of one model.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelUsage {
    /// The model.
    pub model: String,
    /// Calls recorded.
    pub requests: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Cost estimate in millionths of a US dollar.
    pub cost_micros: i64,
}

/// Usage of an account since a time, per model (sorted by model name).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageTotals {
    /// One entry per model, sorted by name.
    pub models: Vec<ModelUsage>,
}

impl UsageTotals {
    /// Input plus output tokens of every model.
    pub fn tokens(&self) -> u64 {
        self.models.iter().map(|m| m.input_tokens + m.output_tokens).sum()
    }

    /// Cost of every model, millionths of a dollar.
    pub fn cost_micros(&self) -> i64 {
        self.models.iter().map(|m| m.cost_micros).sum()
    }

    /// Calls of every model.
    pub fn requests(&self) -> u64 {
        self.models.iter().map(|m| m.requests).sum()
    }

    /// Builds totals from rows (the reference aggregation every store matches).
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = &'a AiUsage>) -> Self {
        let mut by: std::collections::BTreeMap<&str, ModelUsage> = Default::default();
        for r in rows {
            let m = by
                .entry(r.model.as_str())
                .or_insert_with(|| ModelUsage { model: r.model.clone(), ..Default::default() });
            m.requests += 1;
            m.input_tokens += u64::from(r.usage.input);
            m.output_tokens += u64::from(r.usage.output);
            m.cost_micros += r.cost_micros;
        }
        UsageTotals { models: by.into_values().collect() }
    }
}

/// The first instant of `at`'s month (UTC): budgets and the usage page count from it.
pub fn month_start(at: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0).single().unwrap_or(at)
}

/// The first instant of the month after `at`'s.
pub fn next_month_start(at: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if at.month() == 12 { (at.year() + 1, 1) } else { (at.year(), at.month() + 1) };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or(at)
}

/// Whether the assistant answers inbound messages on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AutoReplyMode {
    /// No automatic reply (the default).
    #[default]
    Off,
    /// A draft is stored for an agent to review.
    Suggest,
    /// The draft is sent (within the 24-hour window).
    Send,
}

impl AutoReplyMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AutoReplyMode::Off => "off",
            AutoReplyMode::Suggest => "suggest",
            AutoReplyMode::Send => "send",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "off" => AutoReplyMode::Off,
            "suggest" => AutoReplyMode::Suggest,
            "send" => AutoReplyMode::Send,
            _ => return Err(Error::validation("mode", "one of off, suggest, send")),
        })
    }
}

/// The auto-reply setting of an account (`channel_id: None`, every channel)
/// or of one channel (which wins over the account's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutoReplySetting {
    /// The account.
    pub account_id: AccountId,
    /// The channel, or none for the account's default.
    pub channel_id: Option<ChannelId>,
    /// The mode.
    pub mode: AutoReplyMode,
    /// The business context drafts use.
    pub context: BusinessContext,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl AutoReplySetting {
    /// The mode that applies to `channel` among an account's settings: the
    /// channel's own, else the account's (`channel_id: None`), else off.
    pub fn resolve(settings: &[AutoReplySetting], channel: Option<ChannelId>) -> Option<&AutoReplySetting> {
        channel
            .and_then(|c| settings.iter().find(|s| s.channel_id == Some(c)))
            .or_else(|| settings.iter().find(|s| s.channel_id.is_none()))
    }
}

/// A reply the assistant suggested for an agent (auto-reply `suggest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AiDraft {
    /// Id (UUIDv7).
    pub id: AiDraftId,
    /// The account.
    pub account_id: AccountId,
    /// The contact the reply is for.
    pub contact_id: ContactId,
    /// The inbound message it answers.
    pub message_id: Option<MessageId>,
    /// The suggested text.
    pub text: String,
    /// The model that wrote it.
    pub model: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// The assistant's reading of one inbound message (the `message.analyzed` event's payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageAnalysis {
    /// The message.
    pub message_id: MessageId,
    /// Its account.
    pub account_id: AccountId,
    /// Its contact.
    pub contact_id: ContactId,
    /// Sentiment of the message.
    pub sentiment: SentimentScore,
    /// Lead signals of the recent conversation.
    pub signals: LeadSignals,
    /// The model that answered (or `heuristic`).
    pub model: String,
    /// When.
    pub analyzed_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_the_year() {
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).single().expect("time");
        assert_eq!(month_start(at), Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().expect("t"));
        assert_eq!(next_month_start(at), Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).single().expect("t"));
    }

    #[test]
    fn business_context_is_read_only_from_an_object() {
        let ctx: BusinessContext = serde_json::from_str(r#"{"tone": "formal"}"#).expect("an object");
        assert_eq!((ctx.tone, ctx.language.as_str()), (Tone::Formal, "pt-BR"), "missing fields take the defaults");
        assert_eq!(
            serde_json::from_value::<BusinessContext>(serde_json::to_value(&ctx).expect("json")).ok(),
            Some(ctx)
        );
        for bad in ["[null, null]", "[]", "\"friendly\"", "3"] {
            assert!(serde_json::from_str::<BusinessContext>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        let mut ctx = BusinessContext { language: "pt BR; drop".into(), ..Default::default() };
        assert!(matches!(ctx.validate(), Err(Error::Validation { field, .. }) if field == "context.language"));
        ctx.language = "en".into();
        assert!(ctx.validate().is_ok());
        let empty = DraftRequest::default();
        assert!(matches!(empty.validate(), Err(Error::Validation { field, .. }) if field == "conversation"));
        let only_business = DraftRequest {
            conversation: Conversation {
                contact_name: None,
                turns: vec![Turn { speaker: Speaker::Business, text: "Oi".into() }],
            },
            ..Default::default()
        };
        assert!(only_business.validate().is_err(), "nothing to reply to");
        assert!(SentimentScore::new(Sentiment::Neutral, 1.5).is_err());
        assert!(SentimentScore::new(Sentiment::Neutral, f32::NAN).is_err());
    }

    #[test]
    fn channel_setting_wins_over_the_account_default() {
        let a = AccountId::new();
        let c = ChannelId::new();
        let at = Utc::now();
        let mk = |channel_id, mode| AutoReplySetting {
            account_id: a,
            channel_id,
            mode,
            context: Default::default(),
            updated_at: at,
        };
        let all = vec![mk(None, AutoReplyMode::Suggest), mk(Some(c), AutoReplyMode::Send)];
        assert_eq!(AutoReplySetting::resolve(&all, Some(c)).map(|s| s.mode), Some(AutoReplyMode::Send));
        assert_eq!(
            AutoReplySetting::resolve(&all, Some(ChannelId::new())).map(|s| s.mode),
            Some(AutoReplyMode::Suggest)
        );
        assert_eq!(AutoReplySetting::resolve(&all[1..], None), None);
    }

    #[test]
    fn lead_score_grows_with_interest_and_urgency() {
        let s = |interest, urgency, intent| LeadSignals { intent, interest, urgency, confidence: 0.5 }.score();
        assert!(s(Level::High, Level::High, Intent::Purchase) > s(Level::Low, Level::Low, Intent::Purchase));
        assert!(s(Level::High, Level::Low, Intent::Purchase) > s(Level::High, Level::Low, Intent::Complaint));
        assert!(s(Level::High, Level::High, Intent::Purchase) <= 100);
    }
}
