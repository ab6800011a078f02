//! `/api/v1/messages`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::{ContactId, Message, MessageContent, MessageId, MessageStatus, Page, Role, Variables};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::contacts::PageParams;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(send_message, list_messages)).routes(routes!(get_message))
}

/// A template to send.
#[derive(Debug, Deserialize, ToSchema)]
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

/// Send a message. Returns 201 with the stored message; a provider refusal is
/// recorded on it (`status: failed` with `error`), not returned as an error.
#[utoipa::path(post, path = "/messages", tag = "messages", request_body = SendMessage,
    responses((status = 201, body = Message, headers(("location" = String, description = "URL of the new message"))), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn send_message(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<SendMessage>,
) -> ApiResult<(StatusCode, [(axum::http::HeaderName, String); 1], Json<Message>)> {
    principal.require(Role::Agent)?;
    let account = principal.account_id;
    let message = match (body.text, body.template, body.content) {
        (Some(text), None, None) => {
            state.crm().send_message(account, body.contact_id, MessageContent::text(text)).await?
        }
        (None, Some(t), None) => {
            let language = t.language.unwrap_or_else(|| "pt_BR".into());
            state.crm().send_template(account, body.contact_id, &t.name, &language, t.variables).await?
        }
        (None, None, Some(content)) => state.crm().send_message(account, body.contact_id, content).await?,
        _ => return Err(ApiError::validation("body", "send exactly one of text, template or content")),
    };
    state.metrics().observe_message(if message.status == MessageStatus::Failed { "failed" } else { "sent" });
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::LOCATION, format!("/api/v1/messages/{}", message.id))],
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
