//! `/api/v1/messages`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::http::HeaderMap;
use crm_core::{ChannelId, ContactId, Message, MessageContent, MessageId, Page, Role, SendRequest, Variables};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::contacts::PageParams;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_message, list_messages))
        .routes(routes!(get_message))
        .routes(routes!(mark_read))
}

/// A template to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self")]
#[serde(deny_unknown_fields)]
pub(crate) struct TemplateRef {
    /// Template name.
    name: String,
    /// Language; defaults to `pt_BR`.
    #[serde(default)]
    language: Option<String>,
    /// Values for its placeholders (the contact's `name`, `first_name`, `phone`
    /// and `email` are filled in unless given).
    #[serde(default)]
    variables: Variables,
}

crm_core::json_object_only!(deserialize TemplateRef);

/// What to send to whom: exactly one of `text`, `template` or `content`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendMessage {
    /// The recipient.
    contact_id: ContactId,
    /// A plain text body.
    #[serde(default)]
    text: Option<String>,
    /// A stored template, rendered strictly.
    #[serde(default)]
    template: Option<TemplateRef>,
    /// Any other content (media, location, interactive, …).
    #[serde(default)]
    content: Option<MessageContent>,
    /// The channel to send through (default: the account's default channel).
    #[serde(default)]
    channel_id: Option<ChannelId>,
    /// The message this one replies to (quotes): crm's message id, or the
    /// provider's id (`wamid.…`) of a message in the contact's thread.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    reply_to: Option<String>,
    /// The template to send instead when the content is free-form and the
    /// contact's customer-service window on the channel is closed
    /// (overrides the channel's `fallback_template` setting). The message
    /// records the fallback in `fallback`.
    #[serde(default)]
    fallback_template: Option<crm_core::FallbackTemplate>,
}

/// Messages of one contact.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListMessages {
    /// The contact whose thread to list.
    contact_id: ContactId,
    /// Cursor from the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// Queue a message. Validates it (content, opt-in, the channel's
/// capabilities and 24-hour customer-service window), stores it as `queued`
/// and answers 202 at once. A free-form message outside the window is sent
/// as the fallback template (the request's `fallback_template`, else the
/// channel's) and records it in `fallback`; without one it is refused with
/// 422 naming the window; the dispatcher sends it through the channel's
/// governor and records `sent` or `failed` (poll `GET /messages/{id}` or
/// consume `message.status_updated` events). Send `Idempotency-Key` to make
/// a retried request return the first message (`Idempotent-Replayed: true`)
/// instead of sending twice; the same key with a different message is 409.
#[utoipa::path(post, path = "/messages", tag = "messages", request_body = SendMessage,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–255 printable ASCII characters; makes the request safe to retry")),
    responses((status = 202, body = Message, headers(("location" = String, description = "URL of the message"), ("idempotent-replayed" = String, description = "`true` when an earlier request with the same key created the message"))),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn send_message(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SendMessage>,
) -> ApiResult<(StatusCode, [(axum::http::HeaderName, String); 2], Json<Message>)> {
    principal.require(Role::Agent)?;
    let account = principal.account_id;
    let reference = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| (0x21..=0x7e).contains(&b)))
                .ok_or_else(|| {
                    ApiError::validation(
                        "Idempotency-Key",
                        "must be 1 to 255 printable ASCII characters without spaces",
                    )
                })?
                .to_owned(),
        ),
    };
    let content = match (body.text, body.template, body.content) {
        (Some(text), None, None) => MessageContent::text(text),
        (None, Some(t), None) => {
            let language = t.language.unwrap_or_else(|| "pt_BR".into());
            state.crm().render_template_for(account, body.contact_id, &t.name, &language, t.variables).await?
        }
        (None, None, Some(content)) => content,
        _ => return Err(ApiError::validation("body", "send exactly one of text, template or content")),
    };
    let mut req = SendRequest::new(body.contact_id, content);
    req.channel_id = body.channel_id;
    req.reply_to = body.reply_to.as_deref().map(crm_core::Quote::parse);
    req.fallback_template = body.fallback_template;
    req.client_reference = reference;
    let queued = state.crm().queue_message(account, req).await?;
    if !queued.replayed {
        state.metrics().observe_message("queued");
    }
    let message = queued.message;
    Ok((
        StatusCode::ACCEPTED,
        [
            (axum::http::header::LOCATION, format!("/api/v1/messages/{}", message.id)),
            (axum::http::HeaderName::from_static("idempotent-replayed"), queued.replayed.to_string()),
        ],
        Json(message),
    ))
}

/// Messages of a contact, oldest first.
#[utoipa::path(get, path = "/messages", tag = "messages", params(ListMessages),
    responses((status = 200, body = Page<Message>), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn list_messages(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListMessages>,
) -> ApiResult<Json<Page<Message>>> {
    let page = PageParams { cursor: q.cursor, limit: q.limit }.page()?;
    Ok(Json(state.crm().list_thread(principal.account_id, q.contact_id, &page).await?))
}

/// Get a message and its current status.
#[utoipa::path(get, path = "/messages/{id}", tag = "messages", params(("id" = MessageId, Path)),
    responses((status = 200, body = Message), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn get_message(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<MessageId>,
) -> ApiResult<Json<Message>> {
    Ok(Json(state.crm().get_message(principal.account_id, id).await?))
}

/// Marks an inbound message read on WhatsApp: the contact sees blue ticks on
/// it and on the conversation's messages before it. Sent at once through the
/// channel the message came in on (`whatsapp-cloud`: Meta's `status: read`;
/// `whatsapp-web`: the session marks the chat read).
#[utoipa::path(post, path = "/messages/{id}/read", tag = "messages", operation_id = "mark_message_read",
    params(("id" = MessageId, Path)),
    responses(
        (status = 204, description = "Marked read"),
        (status = 404, description = "No such message", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An outbound message, one without its channel, or a channel without read receipts", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The channel's session is not connected now (`/problems/channel-not-connected`); retry once it is", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The provider refused", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider is unreachable; retry later", body = Problem, content_type = "application/problem+json"),
    ), security(("api_key" = [])))]
async fn mark_read(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<MessageId>,
) -> ApiResult<StatusCode> {
    principal.require(Role::Agent)?;
    state.crm().mark_read(principal.account_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
