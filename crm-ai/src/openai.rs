//! [`OpenAiAssistant`]: the OpenAI-compatible chat-completions adapter
//! (async-openai), feature `openai`.
//!
//! - Drafts: the reply model at `reply_temperature` (0.7) and
//!   `reply_max_tokens` (150), the seed's settings; streamed with
//!   `stream: true` and `stream_options.include_usage`.
//! - Sentiment, lead signals and summaries: structured outputs (a strict
//!   JSON schema `response_format`) at `analysis_temperature` (0, deterministic).
//!   The answer is parsed into the expected shape and checked (enums,
//!   confidence in `[0, 1]`, non-empty text); anything else is a permanent
//!   `Error::Provider` with code `unparseable_output`, a model refusal one
//!   with code `refusal`.
//! - Prompt hygiene ([`crate::prompt`]): the system prompt holds only the
//!   task and the business's settings; customer text goes as JSON data in
//!   the user message; a draft repeating the system prompt is refused
//!   (`system_prompt_leak`).
//! - HTTP: the caller's `reqwest::Client` executes every request through a
//!   small tower service ([`async_openai::Client::with_http_service`]) that
//!   turns a non-2xx answer into an error carrying its status and
//!   `Retry-After`, so the crate's own retry loop is not used: retries,
//!   timeouts and limits are the wrappers of [`crate::guard`].

use async_openai::config::OpenAIConfig;
use async_openai::error::{ApiError, OpenAIError};
use async_openai::middleware::HttpRequestFactory;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage, ChatCompletionRequestSystemMessageContent,
    ChatCompletionRequestUserMessage, ChatCompletionRequestUserMessageContent, ChatCompletionStreamOptions,
    CreateChatCompletionRequest, CreateChatCompletionResponse, FinishReason, ResponseFormat, ResponseFormatJsonSchema,
};
use async_trait::async_trait;
use futures_util::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crm_core::domain::assistant::{
    Answer, BusinessContext, Conversation, DraftRequest, Intent, LeadSignals, Level, MAX_AI_TEXT_CHARS, Sentiment,
    SentimentScore, Summary, TokenUsage, check_text,
};
use crm_core::{AccountId, Assistant, DraftChunk, DraftStream, Error, Result};

use crate::prompt::{DATA_RULE, business_lines, conversation_block, leaks_system_prompt, text_block};

/// The provider name in errors.
pub const PROVIDER: &str = "openai";

/// Settings of the OpenAI-compatible adapter.
#[derive(Clone)]
pub struct OpenAiSettings {
    /// The API key (sent as a bearer token; never logged or shown).
    pub api_key: String,
    /// The API base URL, e.g. `https://api.openai.com/v1` or a local
    /// server's `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// The model of every call.
    pub model: String,
    /// Draft length cap (tokens); the seed's 150.
    pub reply_max_tokens: u32,
    /// Draft temperature; the seed's 0.7.
    pub reply_temperature: f32,
    /// Temperature of sentiment, signals and summaries (0: deterministic).
    pub analysis_temperature: f32,
    /// Token cap of sentiment and signals.
    pub analysis_max_tokens: u32,
    /// Token cap of summaries.
    pub summary_max_tokens: u32,
}

impl std::fmt::Debug for OpenAiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSettings")
            .field("api_key", &"[redacted]")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("reply_max_tokens", &self.reply_max_tokens)
            .field("reply_temperature", &self.reply_temperature)
            .finish_non_exhaustive()
    }
}

impl OpenAiSettings {
    /// Defaults: OpenAI's API, `gpt-4o-mini`, drafts of 150 tokens at 0.7,
    /// analyses at temperature 0 with 200 tokens, summaries 300.
    pub fn new(api_key: impl Into<String>) -> Self {
        OpenAiSettings {
            api_key: api_key.into(),
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
            reply_max_tokens: 150,
            reply_temperature: 0.7,
            analysis_temperature: 0.0,
            analysis_max_tokens: 200,
            summary_max_tokens: 300,
        }
    }

    /// Another base URL (an OpenAI-compatible server).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Another model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    fn validate(&self) -> Result<()> {
        let config = |m: &str| Err(Error::Config { message: m.into() });
        if self.api_key.trim().is_empty() {
            return config("the OpenAI API key is empty");
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return config("the OpenAI base URL must be an http(s) URL");
        }
        if self.model.trim().is_empty() {
            return config("the model name is empty");
        }
        let temp_ok = |t: f32| t.is_finite() && (0.0..=2.0).contains(&t);
        if !temp_ok(self.reply_temperature) || !temp_ok(self.analysis_temperature) {
            return config("temperatures are between 0 and 2");
        }
        if self.reply_max_tokens == 0 || self.analysis_max_tokens == 0 || self.summary_max_tokens == 0 {
            return config("token caps must be at least 1");
        }
        Ok(())
    }
}

/// A non-2xx answer: its status, `Retry-After` and error object.
#[derive(Debug)]
struct HttpFailure {
    status: u16,
    retry_after: Option<Duration>,
    error: Option<ApiError>,
}

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)
    }
}

impl std::error::Error for HttpFailure {}

#[derive(Deserialize)]
struct WrappedError {
    error: ApiError,
}

/// The tower service async-openai sends through: the caller's client, no retries.
#[derive(Clone, Debug)]
struct Transport {
    http: reqwest::Client,
}

type TransportFuture = Pin<Box<dyn Future<Output = std::result::Result<reqwest::Response, OpenAIError>> + Send>>;

impl tower::Service<HttpRequestFactory> for Transport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = TransportFuture;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<std::result::Result<(), OpenAIError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> TransportFuture {
        let http = self.http.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            let response = http.execute(request).await.map_err(OpenAIError::Reqwest)?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(3600.0)));
            let body = response.bytes().await.unwrap_or_default();
            let error =
                serde_json::from_slice::<WrappedError>(&body[..body.len().min(16 * 1024)]).ok().map(|w| w.error);
            Err(OpenAIError::Boxed(Box::new(HttpFailure { status: status.as_u16(), retry_after, error })))
        })
    }
}

/// The OpenAI-compatible assistant.
///
/// ```no_run
/// # fn f() -> crm_core::Result<()> {
/// use crm_ai::{OpenAiAssistant, OpenAiSettings};
/// let http = reqwest::Client::new();
/// let settings = OpenAiSettings::new("sk-…").base_url("http://127.0.0.1:8080/v1").model("qwen2.5-0.5b");
/// let assistant = OpenAiAssistant::new(settings, http)?;
/// # Ok(()) }
/// ```
pub struct OpenAiAssistant {
    client: async_openai::Client<OpenAIConfig>,
    settings: OpenAiSettings,
}

impl std::fmt::Debug for OpenAiAssistant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiAssistant").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// Which structured answer a call asks for.
#[derive(Clone, Copy)]
enum Task {
    Sentiment,
    Signals,
    Summary,
}

impl OpenAiAssistant {
    /// The adapter over `http` (the application's client: its timeouts,
    /// proxies and TLS). [`Error::Config`] for invalid settings.
    pub fn new(settings: OpenAiSettings, http: reqwest::Client) -> Result<Self> {
        settings.validate()?;
        let config =
            OpenAIConfig::new().with_api_base(settings.base_url.trim_end_matches('/')).with_api_key(&settings.api_key);
        let client = async_openai::Client::with_config(config).with_http_service(Transport { http });
        Ok(OpenAiAssistant { client, settings })
    }

    /// The settings (the key stays redacted in `Debug`).
    pub fn settings(&self) -> &OpenAiSettings {
        &self.settings
    }

    fn request(&self, system: String, user: String, max_tokens: u32, temperature: f32) -> CreateChatCompletionRequest {
        let messages = vec![
            ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
                content: ChatCompletionRequestSystemMessageContent::Text(system),
                name: None,
            }),
            ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
                content: ChatCompletionRequestUserMessageContent::Text(user),
                name: None,
            }),
        ];
        CreateChatCompletionRequest {
            model: self.settings.model.clone(),
            messages,
            max_completion_tokens: Some(max_tokens),
            temperature: Some(temperature),
            ..Default::default()
        }
    }

    fn draft_request(&self, request: &DraftRequest) -> (CreateChatCompletionRequest, String) {
        let system = draft_system_prompt(&request.context);
        let user = conversation_block(&request.conversation);
        let req = self.request(system.clone(), user, self.settings.reply_max_tokens, self.settings.reply_temperature);
        (req, system)
    }

    async fn structured<T: DeserializeOwned>(
        &self,
        task: Task,
        system: String,
        user: String,
    ) -> Result<(T, TokenUsage)> {
        let max = match task {
            Task::Summary => self.settings.summary_max_tokens,
            _ => self.settings.analysis_max_tokens,
        };
        let mut req = self.request(system, user, max, self.settings.analysis_temperature);
        req.response_format = Some(ResponseFormat::JsonSchema { json_schema: schema(task) });
        let response = self.client.chat().create(req).await.map_err(map_error)?;
        let usage = usage_of(&response);
        let choice = first_choice(&response)?;
        if let Some(refusal) = &choice.message.refusal {
            return Err(refused(refusal));
        }
        if choice.finish_reason == Some(FinishReason::Length) {
            return Err(unparseable("the answer was cut at the token limit"));
        }
        let content = choice.message.content.as_deref().ok_or_else(|| unparseable("the answer has no content"))?;
        let value = serde_json::from_str::<T>(content.trim())
            .map_err(|e| unparseable(&format!("not the expected JSON: {e}")))?;
        Ok((value, usage))
    }

    fn answer<T>(&self, value: T, usage: TokenUsage) -> Answer<T> {
        Answer::new(value, self.settings.model.clone(), usage)
    }
}

fn draft_system_prompt(context: &BusinessContext) -> String {
    format!(
        "You are the WhatsApp customer-service assistant of a small business. Write one reply to the customer's \
         last message, in at most three short sentences, in the reply language and tone below. Do not invent \
         prices, stock or delivery times that are not in the conversation or the business instructions.\n{}{}",
        business_lines(context),
        DATA_RULE
    )
}

const SENTIMENT_PROMPT: &str = "You classify the sentiment of one WhatsApp message sent by a customer to a small \
business: positive (praise, thanks, satisfaction), negative (complaint, frustration, irony about a problem) or \
neutral (questions, information). Answer with the JSON schema given, confidence between 0 and 1.";

const SIGNALS_PROMPT: &str = "You extract lead signals from a WhatsApp conversation between a customer and a small \
business: the customer's main intent, their buying interest and their urgency (low, medium, high). Answer with \
the JSON schema given, confidence between 0 and 1.";

fn summary_prompt(context: &BusinessContext) -> String {
    format!(
        "You summarize a WhatsApp conversation between a customer and a small business for an agent, in two or \
         three sentences in the reply language, with the next steps for the business and the customer's overall \
         sentiment. Answer with the JSON schema given.\n{}{}",
        business_lines(context),
        DATA_RULE
    )
}

fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| name(*v)).collect()
}

fn schema(task: Task) -> ResponseFormatJsonSchema {
    let sentiments = names(&Sentiment::ALL, Sentiment::as_str);
    let levels = names(&Level::ALL, Level::as_str);
    let (name, schema) = match task {
        Task::Sentiment => (
            "sentiment",
            serde_json::json!({
                "type": "object",
                "properties": {
                    "sentiment": { "type": "string", "enum": sentiments },
                    "confidence": { "type": "number" }
                },
                "required": ["sentiment", "confidence"],
                "additionalProperties": false
            }),
        ),
        Task::Signals => (
            "lead_signals",
            serde_json::json!({
                "type": "object",
                "properties": {
                    "intent": { "type": "string", "enum": names(&Intent::ALL, Intent::as_str) },
                    "interest": { "type": "string", "enum": levels },
                    "urgency": { "type": "string", "enum": levels },
                    "confidence": { "type": "number" }
                },
                "required": ["intent", "interest", "urgency", "confidence"],
                "additionalProperties": false
            }),
        ),
        Task::Summary => (
            "thread_summary",
            serde_json::json!({
                "type": "object",
                "properties": {
                    "text": { "type": "string" },
                    "next_steps": { "type": "array", "items": { "type": "string" } },
                    "sentiment": { "type": "string", "enum": sentiments }
                },
                "required": ["text", "next_steps", "sentiment"],
                "additionalProperties": false
            }),
        ),
    };
    ResponseFormatJsonSchema { description: None, name: name.into(), schema, strict: Some(true) }
}

/// The shapes the model must answer (unknown fields refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SentimentOut {
    sentiment: Sentiment,
    confidence: f32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalsOut {
    intent: Intent,
    interest: Level,
    urgency: Level,
    confidence: f32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryOut {
    text: String,
    next_steps: Vec<String>,
    sentiment: Sentiment,
}

fn usage_of(response: &CreateChatCompletionResponse) -> TokenUsage {
    response
        .usage
        .as_ref()
        .map(|u| TokenUsage { input: u.prompt_tokens, output: u.completion_tokens })
        .unwrap_or_default()
}

fn first_choice(response: &CreateChatCompletionResponse) -> Result<&async_openai::types::chat::ChatChoice> {
    response.choices.first().ok_or_else(|| unparseable("the answer has no choices"))
}

fn provider_error(transient: bool, code: &str, message: impl Into<String>) -> Error {
    Error::Provider {
        provider: PROVIDER.into(),
        transient,
        code: Some(code.into()),
        message: message.into(),
        retry_after: None,
        source: None,
    }
}

fn unparseable(why: &str) -> Error {
    provider_error(false, "unparseable_output", format!("the model's answer was not usable: {why}"))
}

fn refused(refusal: &str) -> Error {
    provider_error(false, "refusal", format!("the model refused: {}", clean(refusal)))
}

/// A provider message fit for logs and clients: API keys masked, clipped.
fn clean(message: &str) -> String {
    let masked: Vec<String> = message
        .split_whitespace()
        .map(|w| if w.starts_with("sk-") || w.len() > 40 { "[redacted]".to_string() } else { w.to_string() })
        .collect();
    masked.join(" ").chars().take(200).collect()
}

/// async-openai's errors → [`Error`]: 429 and 5xx and network failures are
/// transient (with the provider's `Retry-After`), `insufficient_quota` and
/// other 4xx permanent, undecodable bodies `malformed_response`.
fn map_error(e: OpenAIError) -> Error {
    match e {
        OpenAIError::Boxed(inner) => match inner.downcast::<HttpFailure>() {
            Ok(f) => {
                let code = f.error.as_ref().and_then(|e| e.code.clone().or_else(|| e.r#type.clone()));
                let quota = code.as_deref() == Some("insufficient_quota");
                let transient = (f.status == 429 && !quota) || f.status >= 500;
                let message =
                    f.error.as_ref().map(|e| clean(&e.message)).unwrap_or_else(|| format!("HTTP {}", f.status));
                Error::Provider {
                    provider: PROVIDER.into(),
                    transient,
                    code: Some(code.unwrap_or_else(|| format!("http_{}", f.status))),
                    message,
                    retry_after: f.retry_after,
                    source: None,
                }
            }
            Err(other) => provider_error(true, "transport", clean(&other.to_string())),
        },
        OpenAIError::Reqwest(e) => {
            let code = if e.is_timeout() { "timeout" } else { "network" };
            Error::Provider {
                provider: PROVIDER.into(),
                transient: true,
                code: Some(code.into()),
                message: "the request to the model server failed".into(),
                retry_after: None,
                source: Some(Box::new(e.without_url())),
            }
        }
        OpenAIError::JSONDeserialize(_, _) => {
            provider_error(false, "malformed_response", "the model server's answer is not a chat completion")
        }
        OpenAIError::ApiError(api) => {
            let status = api.status_code.as_u16();
            let transient = status == 429 || status >= 500;
            provider_error(transient, &format!("http_{status}"), clean(&api.api_error.message))
        }
        OpenAIError::StreamError(_) => provider_error(true, "stream", "the answer stream broke off"),
        OpenAIError::InvalidArgument(m) => Error::validation("request", clean(&m)),
        other => provider_error(false, "client", clean(&other.to_string())),
    }
}

/// A draft's text: trimmed, non-empty, within the message limit, not a
/// repetition of the system prompt.
fn check_draft(text: &str, system: &str) -> Result<String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(unparseable("the draft is empty"));
    }
    if leaks_system_prompt(text, system) {
        return Err(provider_error(false, "system_prompt_leak", "the draft repeated the assistant's instructions"));
    }
    Ok(text.chars().take(MAX_AI_TEXT_CHARS).collect())
}

fn check_confidence(c: f32) -> Result<f32> {
    if c.is_finite() && (0.0..=1.0).contains(&c) { Ok(c) } else { Err(unparseable("confidence outside [0, 1]")) }
}

#[async_trait]
impl Assistant for OpenAiAssistant {
    fn name(&self) -> &str {
        PROVIDER
    }

    async fn draft_reply(&self, _account: AccountId, request: &DraftRequest) -> Result<Answer<String>> {
        request.validate()?;
        let (req, system) = self.draft_request(request);
        let response = self.client.chat().create(req).await.map_err(map_error)?;
        let usage = usage_of(&response);
        let choice = first_choice(&response)?;
        if let Some(refusal) = &choice.message.refusal {
            return Err(refused(refusal));
        }
        if choice.finish_reason == Some(FinishReason::ContentFilter) {
            return Err(provider_error(false, "refusal", "the provider's content filter stopped the draft"));
        }
        let text = check_draft(choice.message.content.as_deref().unwrap_or_default(), &system)?;
        Ok(self.answer(text, usage))
    }

    async fn draft_reply_stream(&self, _account: AccountId, request: &DraftRequest) -> Result<DraftStream> {
        request.validate()?;
        let (mut req, system) = self.draft_request(request);
        req.stream_options = Some(ChatCompletionStreamOptions { include_usage: Some(true), include_obfuscation: None });
        let mut upstream = self.client.chat().create_stream(req).await.map_err(map_error)?;
        let (tx, stream) = DraftStream::channel(32);
        let model = self.settings.model.clone();
        tokio::spawn(async move {
            let mut text = String::new();
            let mut usage = TokenUsage::default();
            let mut refusal = String::new();
            while let Some(item) = upstream.next().await {
                let chunk = match item {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(map_error(e))).await;
                        return;
                    }
                };
                if let Some(u) = &chunk.usage {
                    usage = TokenUsage { input: u.prompt_tokens, output: u.completion_tokens };
                }
                for choice in &chunk.choices {
                    if let Some(r) = &choice.delta.refusal {
                        refusal.push_str(r);
                    }
                    if let Some(d) = choice.delta.content.as_deref().filter(|d| !d.is_empty()) {
                        if text.chars().count() + d.chars().count() > MAX_AI_TEXT_CHARS {
                            continue;
                        }
                        text.push_str(d);
                        if tx.send(Ok(DraftChunk::Delta(d.to_string()))).await.is_err() {
                            return; // the reader left
                        }
                    }
                }
            }
            let end = if !refusal.is_empty() {
                Err(refused(&refusal))
            } else {
                check_draft(&text, &system).map(|_| DraftChunk::Done(Answer::new(text.clone(), model, usage)))
            };
            let _ = tx.send(end).await;
        });
        Ok(stream)
    }

    async fn classify_sentiment(&self, _account: AccountId, text: &str) -> Result<Answer<SentimentScore>> {
        check_text("text", text)?;
        let system = format!("{SENTIMENT_PROMPT}\n{DATA_RULE}");
        let (out, usage): (SentimentOut, _) = self.structured(Task::Sentiment, system, text_block(text)).await?;
        let score = SentimentScore { sentiment: out.sentiment, confidence: check_confidence(out.confidence)? };
        Ok(self.answer(score, usage))
    }

    async fn lead_signals(&self, _account: AccountId, conversation: &Conversation) -> Result<Answer<LeadSignals>> {
        conversation.validate()?;
        let system = format!("{SIGNALS_PROMPT}\n{DATA_RULE}");
        let (out, usage): (SignalsOut, _) =
            self.structured(Task::Signals, system, conversation_block(conversation)).await?;
        let signals = LeadSignals {
            intent: out.intent,
            interest: out.interest,
            urgency: out.urgency,
            confidence: check_confidence(out.confidence)?,
        };
        Ok(self.answer(signals, usage))
    }

    async fn summarize(
        &self,
        _account: AccountId,
        conversation: &Conversation,
        context: &BusinessContext,
    ) -> Result<Answer<Summary>> {
        conversation.validate()?;
        context.validate()?;
        let (out, usage): (SummaryOut, _) =
            self.structured(Task::Summary, summary_prompt(context), conversation_block(conversation)).await?;
        if out.text.trim().is_empty() {
            return Err(unparseable("the summary is empty"));
        }
        let summary = Summary {
            text: out.text.trim().chars().take(MAX_AI_TEXT_CHARS).collect(),
            next_steps: out.next_steps.into_iter().filter(|s| !s.trim().is_empty()).take(10).collect(),
            sentiment: out.sentiment,
        };
        Ok(self.answer(summary, usage))
    }
}
