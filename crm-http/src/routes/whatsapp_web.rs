//! The `whatsapp-web` channel's account routes (feature `whatsapp-web`):
//! the pairing QR code (`GET /api/v1/channels/{id}/qr`) and starting a
//! session over after a logout (`POST /api/v1/channels/{id}/pair`).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
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

/// Why there is no QR code to show: a connected channel is a plain
/// conflict; a session that is not open here, logged out, or between states
/// is `/problems/channel-not-connected` (the same type every route touching
/// a channel answers for [`Error::NotConnected`]).
fn no_qr(status: Option<SessionStatus>, elsewhere: Option<String>) -> ApiError {
    let not_connected = |reason: String| {
        ApiError::channel_not_connected(format!("the whatsapp-web channel is not connected ({reason})"))
    };
    match (status, elsewhere) {
        (None, Some(owner)) => not_connected(format!("the session is open in another process ({owner}); ask it")),
        (None, None) => not_connected("the session is not open in this process (does it run the workers?)".into()),
        (Some(s), _) => match s.state {
            SessionState::Connected => conflict("the channel is paired and connected"),
            SessionState::LoggedOut => {
                not_connected("the session was logged out: POST /api/v1/channels/{id}/pair first".into())
            }
            other => not_connected(format!("no QR code now: the session is {}", other.name())),
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
        (status = 409, description = "Not pairing now: connected (`/problems/conflict`), or logged out, between states, or open in another process (`/problems/channel-not-connected`)", body = crate::error::Problem, content_type = "application/problem+json"),
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

/// Pairing by phone-number code: the phone number whose WhatsApp will be
/// linked (E.164; a Brazilian mobile with or without its 9th digit).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PairRequest {
    /// The phone number, e.g. `+5511987654321`.
    phone: String,
}

/// The code to type on the phone.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PairingCode {
    /// 8 letters or digits: WhatsApp on the phone → Linked devices → Link a
    /// device → Link with phone number instead.
    code: String,
}

/// How long a code request waits for the session's pairing screen.
const PAIRING_SCREEN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Pairs the channel. Without a body: starts the session over in this
/// process (after the phone logged it out, or a failure) — WhatsApp Web
/// opens again and shows a new QR code; answers 202. With `{"phone": …}`:
/// pairing by phone-number code — the session (started over first when it
/// was logged out or failed) asks WhatsApp for the code to type on that
/// phone, answered with 200; the QR code keeps working beside it.
#[utoipa::path(post, path = "/channels/{id}/pair", tag = "channels", operation_id = "whatsapp_web_pair",
    params(("id" = ChannelId, Path)),
    request_body(content = Option<PairRequest>, description = "Only for pairing by code", content_type = "application/json"),
    responses(
        (status = 200, description = "The pairing code for the phone", body = PairingCode),
        (status = 202, description = "Opening; follow `channel.state_changed` events or GET the QR code"),
        (status = 400, description = "Malformed JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such channel", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Connected already (`/problems/conflict`), or the session is open in another process or not run here (`/problems/channel-not-connected`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body that is not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a whatsapp-web channel, disabled, or a bad phone number", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "WhatsApp Web refused the code request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The session did not reach its pairing screen in time; retry", body = crate::error::Problem, content_type = "application/problem+json"),
    ), security(("api_key" = [])))]
async fn pair_again(
    State(state): State<AppState>,
    principal: crate::auth::Principal,
    ApiPath(id): ApiPath<ChannelId>,
    request: axum::extract::Request,
) -> ApiResult<Response> {
    principal.require(crm_core::Role::Admin)?;
    let by_code = request.headers().contains_key(header::CONTENT_TYPE);
    let body = if by_code {
        use axum::extract::FromRequest;
        Some(crate::extract::ApiJson::<PairRequest>::from_request(request, &state).await?.0)
    } else {
        None
    };
    let channel = web_channel(&state, principal.account_id, id).await?;
    if !channel.enabled {
        return Err(Error::validation("id", "the channel is disabled").into());
    }
    let engine = state.whatsapp_web().ok_or_else(|| conflict("this server runs no WhatsApp Web sessions"))?;
    let Some(status) = engine.status(channel.id) else {
        return Err(no_qr(None, engine.owner_elsewhere(channel.id)));
    };
    let Some(body) = body else {
        engine.restart(&channel).await?;
        return Ok(StatusCode::ACCEPTED.into_response());
    };
    let phone = crm_core::Phone::parse(&body.phone)
        .map_err(|_| Error::validation("phone", "must be a phone number in international form (+55…)"))?;
    match status.state {
        SessionState::Connected => return Err(conflict("the channel is paired and connected")),
        SessionState::LoggedOut | SessionState::Failed { .. } | SessionState::Stopped => {
            engine.restart(&channel).await?
        }
        _ => {}
    }
    let code = engine.request_pairing_code(channel.id, &phone, PAIRING_SCREEN_WAIT).await?;
    Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], axum::Json(PairingCode { code })).into_response())
}
