//! `/api/v1/ai/*` and `/api/v1/contacts/{id}/ai/*`: the assistant — reply
//! drafts (optionally streamed as server-sent events), sentiment, lead
//! signals, thread summaries, usage, the auto-reply setting, and the drafts
//! and analyses the `assistant` worker stored.

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_ai::{AssistantService, UsageReport};
use crm_core::domain::assistant::{
    AiDraft, Answer, AutoReplyMode, AutoReplySetting, BusinessContext, Conversation, LeadSignals, MessageAnalysis,
    Sentiment, Summary, TokenUsage,
};
use crm_core::{ChannelId, ContactId, DraftChunk, Role};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(draft))
        .routes(routes!(summary))
        .routes(routes!(sentiment))
        .routes(routes!(signals))
        .routes(routes!(usage))
        .routes(routes!(list_auto_replies, put_auto_reply))
        .routes(routes!(list_drafts))
        .routes(routes!(list_analyses))
}

fn ai(state: &AppState) -> ApiResult<AssistantService> {
    Ok(state.ai()?)
}

/// What the answer cost and who wrote it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AnswerMeta {
    /// The model (`heuristic` for the offline assistant).
    model: String,
    /// Tokens used.
    usage: TokenUsage,
    /// Set when the model failed and the heuristic answered: why
    /// (`provider:<code>`, `rate_limited`, …).
    fallback: Option<String>,
}

fn meta<T>(a: &Answer<T>) -> AnswerMeta {
    AnswerMeta { model: a.model.clone(), usage: a.usage, fallback: a.fallback.clone() }
}

/// Options of a draft or summary.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DraftOptions {
    /// The business context; absent: the account's auto-reply setting's
    /// context, else Portuguese (pt-BR), friendly.
    #[serde(default)]
    context: Option<BusinessContext>,
}

/// `?stream=true` answers server-sent events.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DraftParams {
    /// Stream the draft as it is written (`text/event-stream`: `delta`
    /// events with `{"text"}`, then one `done` with the draft, or `error`
    /// with a problem).
    #[serde(default)]
    stream: Option<bool>,
}

/// A reply draft.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DraftAnswer {
    /// The suggested reply (not sent).
    text: String,
    #[serde(flatten)]
    meta: AnswerMeta,
}

fn options(body: &axum::body::Bytes) -> ApiResult<DraftOptions> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DraftOptions::default());
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::validation("body", "must be a JSON object"));
    }
    serde_json::from_slice(body).map_err(|e| {
        let detail: String = e.to_string().chars().take(300).collect();
        ApiError::validation("body", detail)
    })
}

/// Draft a reply to a contact's thread (agent). The body is optional
/// (`{"context": {…}}`). Nothing is sent or stored; the usage is counted.
#[utoipa::path(post, path = "/contacts/{id}/ai/draft", tag = "ai", params(("id" = ContactId, Path), DraftParams),
    request_body(content = Option<DraftOptions>, content_type = "application/json"),
    responses(
        (status = 200, body = DraftAnswer, description = "The draft; with `stream=true`, `text/event-stream`"),
        (status = 404, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem),
        (status = 502, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn draft(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ContactId>,
    ApiQuery(params): ApiQuery<DraftParams>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    principal.require(Role::Agent)?;
    let opts = options(&body)?;
    let service = ai(&state)?;
    if params.stream != Some(true) {
        let a = service.draft_reply(principal.account_id, id, opts.context).await?;
        return Ok(Json(DraftAnswer { meta: meta(&a), text: a.value }).into_response());
    }
    let stream = service.draft_reply_stream(principal.account_id, id, opts.context).await?;
    let events = futures_util::stream::unfold(Some(stream), |s| async move {
        let mut s = s?;
        let event = match s.next().await? {
            Ok(DraftChunk::Delta(text)) => {
                SseEvent::default().event("delta").json_data(serde_json::json!({ "text": text }))
            }
            Ok(DraftChunk::Done(a)) => {
                let done = SseEvent::default().event("done").json_data(DraftAnswer { meta: meta(&a), text: a.value });
                return Some((Ok::<_, Infallible>(done.unwrap_or_default()), None));
            }
            Err(e) => {
                let problem = ApiError::from(e).problem();
                let event = SseEvent::default().event("error").json_data(problem);
                return Some((Ok(event.unwrap_or_default()), None));
            }
        };
        Some((Ok(event.unwrap_or_default()), Some(s)))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// A thread summary.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SummaryAnswer {
    /// The summary.
    summary: Summary,
    #[serde(flatten)]
    meta: AnswerMeta,
}

/// Summarize a contact's recent thread (agent). The body is optional (`{"context": {…}}`).
#[utoipa::path(post, path = "/contacts/{id}/ai/summary", tag = "ai", params(("id" = ContactId, Path)),
    request_body(content = Option<DraftOptions>, content_type = "application/json"),
    responses((status = 200, body = SummaryAnswer), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem), (status = 502, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn summary(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ContactId>,
    body: axum::body::Bytes,
) -> ApiResult<Json<SummaryAnswer>> {
    principal.require(Role::Agent)?;
    let opts = options(&body)?;
    let a = ai(&state)?.summarize(principal.account_id, id, opts.context).await?;
    Ok(Json(SummaryAnswer { meta: meta(&a), summary: a.value }))
}

/// A text to classify.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SentimentRequest {
    /// 1–4096 characters.
    #[schema(min_length = 1, max_length = 4096)]
    text: String,
}

/// A sentiment.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SentimentAnswer {
    /// Positive, negative or neutral.
    sentiment: Sentiment,
    /// In [0, 1].
    confidence: f32,
    #[serde(flatten)]
    meta: AnswerMeta,
}

/// Classify the sentiment of a text (agent).
#[utoipa::path(post, path = "/ai/sentiment", tag = "ai", request_body = SentimentRequest,
    responses((status = 200, body = SentimentAnswer), (status = 422, body = Problem), (status = 429, body = Problem),
        (status = 502, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn sentiment(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<SentimentRequest>,
) -> ApiResult<Json<SentimentAnswer>> {
    principal.require(Role::Agent)?;
    let a = ai(&state)?.sentiment(principal.account_id, &body.text).await?;
    Ok(Json(SentimentAnswer { sentiment: a.value.sentiment, confidence: a.value.confidence, meta: meta(&a) }))
}

/// What to read lead signals from: a contact's thread, a conversation, or one text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignalsRequest {
    /// A contact whose recent thread is read.
    #[serde(default)]
    contact_id: Option<ContactId>,
    /// A conversation given whole.
    #[serde(default)]
    conversation: Option<Conversation>,
    /// One customer message.
    #[serde(default)]
    text: Option<String>,
}

/// Lead signals.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SignalsAnswer {
    /// Intent, interest, urgency, confidence.
    signals: LeadSignals,
    /// A lead-score suggestion, 0–100.
    score: u8,
    #[serde(flatten)]
    meta: AnswerMeta,
}

/// Extract lead signals (intent, interest, urgency) for lead scoring (agent).
/// Exactly one of `contact_id`, `conversation`, `text`.
#[utoipa::path(post, path = "/ai/signals", tag = "ai", request_body = SignalsRequest,
    responses((status = 200, body = SignalsAnswer), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem), (status = 502, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn signals(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<SignalsRequest>,
) -> ApiResult<Json<SignalsAnswer>> {
    principal.require(Role::Agent)?;
    let service = ai(&state)?;
    let account = principal.account_id;
    let conversation = match (body.contact_id, body.conversation, body.text) {
        (Some(c), None, None) => service.conversation(account, c).await?,
        (None, Some(c), None) => c,
        (None, None, Some(t)) => Conversation::from_customer(t),
        _ => return Err(ApiError::validation("body", "give exactly one of contact_id, conversation, text")),
    };
    let a = service.signals(account, &conversation).await?;
    Ok(Json(SignalsAnswer { score: a.value.score(), meta: meta(&a), signals: a.value }))
}

/// This month's assistant usage of the account: tokens and cost estimate
/// per model, and the budget left (admin).
#[utoipa::path(get, path = "/ai/usage", tag = "ai",
    responses((status = 200, body = UsageReport), (status = 403, body = Problem)), security(("api_key" = [])))]
async fn usage(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<UsageReport>> {
    principal.require(Role::Admin)?;
    Ok(Json(ai(&state)?.usage(principal.account_id).await?))
}

/// The auto-reply settings.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AutoReplyList {
    /// The account-wide one first, then per channel.
    items: Vec<AutoReplySetting>,
}

/// List the auto-reply settings (agent). With none, auto-reply is off.
#[utoipa::path(get, path = "/ai/auto-reply", tag = "ai",
    responses((status = 200, body = AutoReplyList)), security(("api_key" = [])))]
async fn list_auto_replies(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<AutoReplyList>> {
    principal.require(Role::Agent)?;
    Ok(Json(AutoReplyList { items: ai(&state)?.auto_replies(principal.account_id).await? }))
}

/// An auto-reply setting to store.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AutoReplyInput {
    /// A channel of the account; absent: the account-wide setting.
    #[serde(default)]
    channel_id: Option<ChannelId>,
    /// `off`, `suggest` (drafts stored for agents) or `send` (within the 24-hour window).
    mode: AutoReplyMode,
    /// The business context of its drafts.
    #[serde(default)]
    context: Option<BusinessContext>,
}

/// Set the account's or a channel's auto-reply mode and business context (admin).
#[utoipa::path(put, path = "/ai/auto-reply", tag = "ai", request_body = AutoReplyInput,
    responses((status = 200, body = AutoReplySetting), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn put_auto_reply(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<AutoReplyInput>,
) -> ApiResult<Json<AutoReplySetting>> {
    principal.require(Role::Admin)?;
    let context = body.context.unwrap_or_default();
    Ok(Json(ai(&state)?.set_auto_reply(principal.account_id, body.channel_id, body.mode, context).await?))
}

/// Drafts stored for a contact.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DraftList {
    /// Newest first (at most 100).
    items: Vec<AiDraft>,
}

/// The drafts the assistant suggested for a contact (auto-reply `suggest`; agent).
#[utoipa::path(get, path = "/contacts/{id}/ai/drafts", tag = "ai", params(("id" = ContactId, Path)),
    responses((status = 200, body = DraftList), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn list_drafts(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ContactId>,
) -> ApiResult<Json<DraftList>> {
    principal.require(Role::Agent)?;
    Ok(Json(DraftList { items: ai(&state)?.drafts(principal.account_id, id).await? }))
}

/// Analyses of a contact's messages.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AnalysisList {
    /// Newest message first (at most 100).
    items: Vec<MessageAnalysis>,
}

/// Sentiment and lead signals of a contact's inbound messages, as the
/// `assistant` worker stored them (agent).
#[utoipa::path(get, path = "/contacts/{id}/ai/analyses", tag = "ai", params(("id" = ContactId, Path)),
    responses((status = 200, body = AnalysisList), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn list_analyses(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ContactId>,
) -> ApiResult<Json<AnalysisList>> {
    principal.require(Role::Agent)?;
    Ok(Json(AnalysisList { items: ai(&state)?.analyses(principal.account_id, id).await? }))
}
