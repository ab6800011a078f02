//! The `whatsapp-web` channel's account routes (feature `whatsapp-web`):
//! the pairing QR code (`GET /api/v1/channels/{id}/qr`) and starting a
//! session over after a logout (`POST /api/v1/channels/{id}/pair`).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::{Channel, ChannelId, Error};
use crm_whatsapp::web::{KIND, SessionState, SessionStatus, qr};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

pub(crate) fn account_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(pairing_qr)).routes(routes!(pair_again))
}

/// How the QR code is returned.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct QrQuery {
    /// `png` (default): an image; `text`: drawn with block characters for a
    /// terminal; `raw`: the text the code encodes.
    format: Option<String>,
}

/// The channel, when it is a `whatsapp-web` one of the caller's account.
async fn web_channel(state: &AppState, account: crm_core::AccountId, id: ChannelId) -> ApiResult<Channel> {
    let channel = state.crm().get_channel(account, id).await?;
    if channel.kind.as_str() != KIND {
        return Err(Error::validation("id", format!("only {KIND} channels are paired by QR code")).into());
    }
    Ok(channel)
}

fn conflict(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
}

/// Why there is no QR code to show.
fn no_qr(status: Option<SessionStatus>, elsewhere: Option<String>) -> ApiError {
    match (status, elsewhere) {
        (None, Some(owner)) => conflict(format!("the session is open in another process ({owner}); ask it")),
        (None, None) => conflict("the session is not open in this process (does it run the workers?)"),
        (Some(s), _) => match s.state {
            SessionState::Connected => conflict("the channel is paired and connected"),
            SessionState::LoggedOut => conflict("the session was logged out: POST /api/v1/channels/{id}/pair first"),
            other => conflict(format!("no QR code now: the session is {}", other.name())),
        },
    }
}

/// The QR code to scan with WhatsApp on the phone (Settings → Linked
/// devices → Link a device) while the channel's session is pairing. It
/// changes about every 20 seconds; each new one is also a `channel.qr` event.
#[utoipa::path(get, path = "/channels/{id}/qr", tag = "channels", operation_id = "whatsapp_web_qr",
    params(("id" = ChannelId, Path), QrQuery),
    responses(
        (status = 200, description = "The QR code", content(
            (Vec<u8> = "image/png"),
            (String = "text/plain"),
        )),
        (status = 404, description = "No such channel", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not pairing now (connected, logged out, or open in another process)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a whatsapp-web channel, or an unknown format", body = crate::error::Problem, content_type = "application/problem+json"),
    ), security(("api_key" = [])))]
async fn pairing_qr(
    State(state): State<AppState>,
    principal: crate::auth::Principal,
    ApiPath(id): ApiPath<ChannelId>,
    ApiQuery(q): ApiQuery<QrQuery>,
) -> ApiResult<Response> {
    principal.require(crm_core::Role::Admin)?;
    let format = q.format.as_deref().unwrap_or("png");
    if !matches!(format, "png" | "text" | "raw") {
        return Err(Error::validation("format", "must be png, text or raw").into());
    }
    let channel = web_channel(&state, principal.account_id, id).await?;
    let engine = state.whatsapp_web().ok_or_else(|| conflict("this server runs no WhatsApp Web sessions"))?;
    let status = engine.status(channel.id);
    let Some(code) = status.as_ref().and_then(|s| s.qr.clone()) else {
        return Err(no_qr(status, engine.owner_elsewhere(channel.id)));
    };
    let no_store = (header::CACHE_CONTROL, "no-store");
    Ok(match format {
        "png" => ([(header::CONTENT_TYPE, "image/png"), no_store], qr::to_png(&code)?).into_response(),
        "text" => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), no_store], qr::to_text(&code)?).into_response()
        }
        _ => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), no_store], code).into_response(),
    })
}

/// Starts the channel's session over in this process (after the phone
/// logged it out, or a failure): WhatsApp Web opens again and shows a new
/// QR code. Answers the session's state.
#[utoipa::path(post, path = "/channels/{id}/pair", tag = "channels", operation_id = "whatsapp_web_pair",
    params(("id" = ChannelId, Path)),
    responses(
        (status = 202, description = "Opening; follow `channel.state_changed` events or GET the QR code"),
        (status = 404, description = "No such channel", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Open in another process, or not run here", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a whatsapp-web channel, or disabled", body = crate::error::Problem, content_type = "application/problem+json"),
    ), security(("api_key" = [])))]
async fn pair_again(
    State(state): State<AppState>,
    principal: crate::auth::Principal,
    ApiPath(id): ApiPath<ChannelId>,
) -> ApiResult<StatusCode> {
    principal.require(crm_core::Role::Admin)?;
    let channel = web_channel(&state, principal.account_id, id).await?;
    if !channel.enabled {
        return Err(Error::validation("id", "the channel is disabled").into());
    }
    let engine = state.whatsapp_web().ok_or_else(|| conflict("this server runs no WhatsApp Web sessions"))?;
    if engine.status(channel.id).is_none() {
        return Err(no_qr(None, engine.owner_elsewhere(channel.id)));
    }
    engine.restart(&channel).await?;
    Ok(StatusCode::ACCEPTED)
}
