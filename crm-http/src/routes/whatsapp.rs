//! `/webhooks/whatsapp-cloud/{phone_number_id}`: the WhatsApp Cloud API's
//! webhook (feature `whatsapp-cloud`). Register this URL, with the channel's
//! `verify_token`, in Meta's app dashboard (WhatsApp → Configuration).
//!
//! `GET` answers Meta's verification handshake. `POST` checks
//! `X-Hub-Signature-256` against the raw body with the channel's
//! `app_secret` before reading anything, then records every message and
//! status of the notification before answering 200: an acknowledged
//! notification is stored, and one that could not be stored is answered
//! with an error so Meta sends it again (messages are deduplicated by their
//! `wamid`, and statuses never move a message backwards).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::{Channel, Error};
use crm_whatsapp::webhook::{self, SIGNATURE_HEADER};
use crm_whatsapp::{CloudCredentials, KIND};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(handshake, notify))
}

/// Meta's verification request.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Handshake {
    /// `subscribe`.
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    mode: Option<String>,
    /// The verify token typed into the app dashboard.
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    verify_token: Option<String>,
    /// What to echo back.
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// What a notification did.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct WebhookReceipt {
    /// Messages stored.
    messages: u32,
    /// Messages seen before (same `wamid`), not stored again.
    duplicates: u32,
    /// Status reports applied (a stale or repeated one changes nothing).
    statuses: u32,
    /// Status reports for messages crm does not know, and statuses it does not track.
    unknown_statuses: u32,
    /// Changes for phone numbers of no channel (or of a channel whose app
    /// secret does not sign this body), skipped.
    skipped_changes: u32,
    /// Messages crm refused (e.g. a sender that is not a phone number).
    rejected: u32,
}

fn valid_phone_number_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

/// The enabled `whatsapp-cloud` channel of this phone number id and its
/// opened credentials; `None` (logged) when there is none or it cannot be opened.
async fn channel_of(state: &AppState, phone_number_id: &str) -> Result<Option<(Channel, CloudCredentials)>, Error> {
    if !valid_phone_number_id(phone_number_id) {
        return Ok(None);
    }
    let channel = match state.crm().channel_for_inbound(KIND, phone_number_id).await {
        Ok(c) => c,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let opened = state.crm().channels().open(&channel).and_then(|c| CloudCredentials::from_credentials(&c));
    match opened {
        Ok(c) => Ok(Some((channel, c))),
        Err(e) => {
            tracing::warn!(channel = %channel.id, error = %e, "whatsapp webhook: the channel's credentials cannot be used");
            Ok(None)
        }
    }
}

/// Meta's webhook verification handshake: echoes `hub.challenge` when
/// `hub.mode` is `subscribe` and `hub.verify_token` is the channel's
/// `verify_token`; 403 otherwise.
#[utoipa::path(get, path = "/webhooks/whatsapp-cloud/{phone_number_id}", tag = "webhooks", operation_id = "whatsapp_handshake",
    params(("phone_number_id" = String, Path, description = "The channel's phone number id", pattern = "^[0-9]{1,32}$"), Handshake),
    responses(
        (status = 200, description = "The challenge, echoed", body = String, content_type = "text/plain"),
        (status = 400, description = "Malformed query", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a valid subscription request for this number", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query value holds a NUL character", body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn handshake(
    State(state): State<AppState>,
    ApiPath(phone_number_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<Handshake>,
) -> ApiResult<Response> {
    let refused = || ApiError::forbidden("not a valid subscription request for this number");
    let Some((_, credentials)) = channel_of(&state, &phone_number_id).await? else { return Err(refused()) };
    let Some(expected) = credentials.verify_token.as_ref() else { return Err(refused()) };
    let echo = webhook::verify_subscription(
        q.mode.as_deref(),
        q.verify_token.as_deref(),
        q.challenge.as_deref(),
        expected.expose_secret(),
    );
    match echo {
        Some(challenge) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], challenge.to_owned()).into_response())
        }
        None => Err(refused()),
    }
}

/// A notification from Meta: messages from contacts and status reports of
/// sent messages, signed with the app secret (`X-Hub-Signature-256`).
/// Everything is stored before the 200.
#[utoipa::path(post, path = "/webhooks/whatsapp-cloud/{phone_number_id}", tag = "webhooks", operation_id = "whatsapp_notify",
    params(("phone_number_id" = String, Path, description = "The channel's phone number id", pattern = "^[0-9]{1,32}$"),
           ("X-Hub-Signature-256" = Option<String>, Header, description = "sha256=<HMAC-SHA256 of the body with the app secret, hex>")),
    request_body(content = Object, content_type = "application/json", description = "Meta's notification, as sent"),
    responses(
        (status = 200, body = WebhookReceipt),
        (status = 400, description = "Not a Cloud API notification", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, malformed or wrong signature", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No channel has this phone number id", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Could not be stored now; Meta retries", body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn notify(
    State(state): State<AppState>,
    ApiPath(phone_number_id): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<WebhookReceipt>)> {
    let Some((channel, credentials)) = channel_of(&state, &phone_number_id).await? else {
        return Err(ApiError::not_found("no whatsapp-cloud channel has this phone number id"));
    };
    let Some(secret) = credentials.app_secret.as_ref() else {
        tracing::warn!(channel = %channel.id, "whatsapp webhook refused: the channel has no app_secret");
        return Err(ApiError::unauthorized("the channel has no app secret to verify signatures with"));
    };
    let signature = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    if let Err(e) = webhook::verify_signature(secret.expose_secret().as_bytes(), signature, &body) {
        tracing::warn!(channel = %channel.id, reason = %e, "whatsapp webhook refused");
        return Err(ApiError::unauthorized(e.to_string()));
    }
    let notification = webhook::parse(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut receipt = WebhookReceipt::default();
    let crm = state.crm();
    for change in notification.changes {
        let target = if change.phone_number_id == phone_number_id {
            channel.clone()
        } else {
            // Another number of the same Meta app: only when its own app
            // secret signs this body too.
            match channel_of(&state, &change.phone_number_id).await? {
                Some((other, c))
                    if c.app_secret.as_ref().is_some_and(|s| {
                        webhook::verify_signature(s.expose_secret().as_bytes(), signature, &body).is_ok()
                    }) =>
                {
                    other
                }
                _ => {
                    tracing::warn!(channel = %channel.id, "whatsapp webhook: a change for another number was skipped");
                    receipt.skipped_changes += 1;
                    continue;
                }
            }
        };
        for message in change.messages {
            match crm.record_inbound_via(&target, message).await {
                Ok(r) if r.duplicate => receipt.duplicates += 1,
                Ok(_) => receipt.messages += 1,
                Err(e @ (Error::Validation { .. } | Error::Conflict { .. })) => {
                    tracing::warn!(channel = %target.id, error = %e, "whatsapp webhook: a message was refused");
                    receipt.rejected += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
        receipt.unknown_statuses += u32::try_from(change.skipped_statuses).unwrap_or(u32::MAX);
        for s in change.statuses {
            // Meta may report on a message before the send's answer (its
            // wamid) is stored: crm's id rides in biz_opaque_callback_data.
            let applied = crm.apply_status_report(target.account_id, s.to_provider_status()).await;
            match applied {
                Ok(_) => receipt.statuses += 1,
                Err(Error::NotFound { .. }) => receipt.unknown_statuses += 1,
                Err(e @ Error::Validation { .. }) => {
                    tracing::warn!(channel = %target.id, error = %e, "whatsapp webhook: a status was refused");
                    receipt.rejected += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((StatusCode::OK, Json(receipt)))
}

/// The account's routes for a `whatsapp-cloud` channel's provider templates
/// (under `/api/v1`, behind API keys).
pub(crate) fn account_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sync_templates))
        .routes(routes!(submit_template))
        .routes(routes!(delete_provider_template))
}

/// What a template sync did.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct TemplateSync {
    /// Approved templates new to crm.
    created: u32,
    /// Approved templates whose body, category or parameters changed.
    updated: u32,
    /// Approved templates crm already had as they are.
    unchanged: u32,
    /// Templates not approved (pending, rejected, paused, …) or that crm
    /// cannot use (no body text, a name or body crm refuses), by `name (language): why`.
    skipped: Vec<String>,
}

/// A template submitted to Meta.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubmittedTemplate {
    /// crm's copy (sends are checked against it).
    template: crm_core::Template,
    /// Meta's id.
    provider_id: String,
    /// Meta's review status (`PENDING`, `APPROVED`, …).
    provider_status: String,
}

/// The channel's messenger and WhatsApp Business Account id.
async fn cloud_channel(
    state: &AppState,
    account: crm_core::AccountId,
    id: crm_core::ChannelId,
) -> ApiResult<(crm_whatsapp::CloudApiMessenger, String)> {
    let channel = state.crm().get_channel(account, id).await?;
    if channel.kind.as_str() != KIND {
        return Err(Error::validation("channel", format!("templates are managed on {KIND} channels")).into());
    }
    let waba = crm_whatsapp::CloudSettings::from_channel(&channel)?.business_account_id.ok_or_else(|| {
        Error::validation("settings.business_account_id", "set the WhatsApp Business Account id to manage templates")
    })?;
    let credentials = state.crm().channels().open(&channel)?;
    let messenger =
        crm_whatsapp::CloudApiMessenger::from_channel(&channel, &credentials, crm_whatsapp::http_client()?)?;
    Ok((messenger, waba))
}

/// Copies the WhatsApp Business Account's approved templates into crm's
/// templates (name, language, category, body with its placeholders, header
/// and button parameters), so template sends are rendered and their
/// variables checked before Meta is called.
#[utoipa::path(post, path = "/channels/{id}/templates/sync", tag = "channels",
    params(("id" = crm_core::ChannelId, Path)),
    responses((status = 200, body = TemplateSync), (status = 502, body = crate::error::Problem)), security(("api_key" = [])))]
async fn sync_templates(
    State(state): State<AppState>,
    principal: crate::auth::Principal,
    ApiPath(id): ApiPath<crm_core::ChannelId>,
) -> ApiResult<Json<TemplateSync>> {
    principal.require(crm_core::Role::Admin)?;
    let account = principal.account_id;
    let (messenger, waba) = cloud_channel(&state, account, id).await?;
    let crm = state.crm();
    let mut report = TemplateSync::default();
    for t in messenger.list_templates(&waba).await? {
        let label = format!("{} ({})", t.name, t.language);
        if !t.is_approved() {
            report.skipped.push(format!("{label}: {}", t.status.to_ascii_lowercase()));
            continue;
        }
        let input = match t.to_new_template() {
            Ok(i) => i,
            Err(e) => {
                report.skipped.push(format!("{label}: {e}"));
                continue;
            }
        };
        let outcome = match crm.store().find_template(account, &t.name, &t.language).await? {
            Some(existing)
                if existing.body == input.body
                    && Some(existing.category) == input.category
                    && existing.parameters == input.parameters =>
            {
                report.unchanged += 1;
                Ok(())
            }
            Some(existing) => crm.update_template(account, existing.id, input).await.map(|_| report.updated += 1),
            None => crm.create_template(account, input).await.map(|_| report.created += 1),
        };
        match outcome {
            Ok(()) => {}
            Err(e @ Error::Validation { .. }) => report.skipped.push(format!("{label}: {e}")),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(report))
}

/// Submits a template to Meta for review (its body, with example values for
/// the placeholders) and keeps crm's copy.
#[utoipa::path(post, path = "/channels/{id}/templates", tag = "channels",
    params(("id" = crm_core::ChannelId, Path)), request_body = crm_core::NewTemplate,
    responses((status = 201, body = SubmittedTemplate), (status = 409, body = crate::error::Problem), (status = 502, body = crate::error::Problem)),
    security(("api_key" = [])))]
async fn submit_template(
    State(state): State<AppState>,
    principal: crate::auth::Principal,
    ApiPath(id): ApiPath<crm_core::ChannelId>,
    crate::extract::ApiJson(input): crate::extract::ApiJson<crm_core::NewTemplate>,
) -> ApiResult<(StatusCode, Json<SubmittedTemplate>)> {
    principal.require(crm_core::Role::Admin)?;
    let account = principal.account_id;
    // Checked locally first: Meta is called only with a template crm accepts.
    crm_core::Template::new(account, input.clone(), state.crm().clock().now())?;
    let (messenger, waba) = cloud_channel(&state, account, id).await?;
    let (provider_id, provider_status) = messenger.create_template(&waba, &input).await?;
    let language = input.language.clone().unwrap_or_else(|| "pt_BR".into());
    let template = match state.crm().store().find_template(account, &input.name, &language).await? {
        Some(existing) => state.crm().update_template(account, existing.id, input).await?,
        None => state.crm().create_template(account, input).await?,
    };
    Ok((StatusCode::CREATED, Json(SubmittedTemplate { template, provider_id, provider_status })))
}

/// Deletes a template (every language) at Meta and crm's copies of it.
#[utoipa::path(delete, path = "/channels/{id}/templates/{name}", tag = "channels",
    params(("id" = crm_core::ChannelId, Path), ("name" = String, Path, pattern = "^[a-z0-9_]{1,512}$")),
    responses((status = 204), (status = 502, body = crate::error::Problem)), security(("api_key" = [])))]
async fn delete_provider_template(
    State(state): State<AppState>,
    principal: crate::auth::Principal,
    ApiPath((id, name)): ApiPath<(crm_core::ChannelId, String)>,
) -> ApiResult<StatusCode> {
    principal.require(crm_core::Role::Admin)?;
    let account = principal.account_id;
    let (messenger, waba) = cloud_channel(&state, account, id).await?;
    messenger.delete_template(&waba, &name).await?;
    let mut page = crm_core::PageRequest::first(crm_core::PageRequest::MAX_LIMIT)?;
    loop {
        let templates = state.crm().list_templates(account, &page).await?;
        for t in templates.items.iter().filter(|t| t.name == name) {
            match state.crm().delete_template(account, t.id).await {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match templates.next_cursor {
            Some(c) => page = crm_core::PageRequest::new(Some(&c), crm_core::PageRequest::MAX_LIMIT)?,
            None => break,
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
