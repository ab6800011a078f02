//! The channels page: each channel of the account with its state —
//! active, throttled (with the reason and when sending resumes) or
//! disabled — and, for a WhatsApp Web channel, its session (connected,
//! pairing, reconnecting…). While a session pairs, admins see its QR code,
//! which follows the session live (each new code is a `channel.qr` event
//! on the dashboard's event stream, and the page re-reads itself), and can
//! ask for a pairing code for a phone number instead.
//!
//! - `GET /dashboard/channels`.
//! - `GET /dashboard/channels/{id}/qr.png` the current QR code (admins;
//!   404 when the session shows none), the same image as
//!   `GET /api/v1/channels/{id}/qr`.
//! - `POST /dashboard/channels/{id}/pair` with `phone`: the code to type on
//!   the phone, shown on the page (a bad number is shown in the form);
//!   without `phone`: the session starts over (after a logout).

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crm_core::{Channel, ChannelId, ChannelView, Role};

use super::pages::{Params, Strings, failure, field, form_viewer, not_found, notice, page_viewer, uuid_of, when};
use super::{Ctx, Viewer};
use crate::state::AppState;

/// The channels routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/channels", get(channels_page))
        .route("/dashboard/channels/{id}/qr.png", get(qr_png))
        .route("/dashboard/channels/{id}/pair", post(pair))
}

/// A WhatsApp Web session as the page shows it.
#[derive(Debug, Default, Clone, PartialEq)]
#[cfg_attr(not(feature = "whatsapp-web"), allow(dead_code))]
struct Session {
    /// `opening`, `pairing`, `connected`, …
    state: &'static str,
    /// Why, for `reconnecting` and `failed`.
    reason: Option<String>,
    /// The QR code's text while pairing.
    qr: Option<String>,
    /// When the session entered this state.
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether this process runs the session at all.
    here: bool,
}

/// The session of `channel` in this process; `None` for other kinds.
#[cfg(feature = "whatsapp-web")]
fn session(state: &AppState, channel: &Channel) -> Option<Session> {
    use crm_whatsapp::web::{KIND, SessionState};
    if channel.kind.as_str() != KIND {
        return None;
    }
    let Some(status) = state.whatsapp_web().and_then(|e| e.status(channel.id)) else {
        return Some(Session { state: "stopped", here: false, ..Session::default() });
    };
    let reason = match &status.state {
        SessionState::Reconnecting { reason, .. } | SessionState::Failed { reason } => Some(reason.clone()),
        _ => None,
    };
    Some(Session { state: status.state.name(), reason, qr: status.qr, since: Some(status.since), here: true })
}

#[cfg(not(feature = "whatsapp-web"))]
fn session(_: &AppState, _: &Channel) -> Option<Session> {
    None
}

/// A short tag of the QR code's text, so the image's URL changes with it
/// (the browser fetches each new code and caches none).
fn qr_tag(qr: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    qr.hash(&mut h);
    format!("{:016x}", h.finish())
}

fn channel_json(c: &Channel, v: &ChannelView, s: Option<&Session>, strings: &Strings, admin: bool) -> Value {
    let label = |key: String| strings.get(key.as_str()).copied().unwrap_or("");
    let session = s.map(|s| {
        json!({
            "state": s.state,
            "label": label(format!("session_{}", s.state)),
            "reason": s.reason,
            "since": s.since.map(when),
            "here": s.here,
            // The code only for admins, as on the API.
            "qr": if admin { s.qr.as_deref().map(qr_tag) } else { None },
            "pairing": s.state == "pairing",
            "can_restart": admin && s.here && matches!(s.state, "logged_out" | "failed" | "stopped"),
        })
    });
    json!({
        "id": c.id.to_string(),
        "name": c.name,
        "kind": c.kind.as_str(),
        "provider_id": c.provider_id,
        "default": c.is_default,
        "state": v.state,
        "state_label": label(format!("channel_{}", v.state)),
        "throttle": v.throttle.as_ref().map(|t| json!({ "reason": t.reason, "until": when(t.until), "since": when(t.since) })),
        "rate": v.pacing.per_second,
        "session": session,
        "created": when(c.created_at),
    })
}

async fn render(
    state: &AppState,
    ctx: Ctx,
    viewer: Viewer,
    status: StatusCode,
    extra: Value,
    done_key: Option<&str>,
) -> Response {
    let channels = match state.crm().list_channels(viewer.account).await {
        Ok(c) => c,
        Err(e) => return failure(ctx, &viewer, &e, "nav_channels"),
    };
    let now = state.crm().clock().now();
    let strings = ctx.lang.strings();
    let admin = viewer.user.role >= Role::Admin;
    let rows: Vec<Value> = channels
        .iter()
        .map(|c| channel_json(c, &ChannelView::of(c, now), session(state, c).as_ref(), &strings, admin))
        .collect();
    let base = json!({
        "channels": rows, "admin": admin, "notice": notice(&strings, done_key),
        "pairing_code": null, "pair_error": null, "pair_channel": null, "pair_phone": "",
    });
    ctx.render(status, "channels.html", Some(&viewer.user), "channels", super::pages::merged(base, extra))
}

async fn channels_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Params>) -> Response {
    let (ctx, viewer) = match page_viewer(&state, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    render(&state, ctx, viewer, StatusCode::OK, json!({}), q.done.as_deref()).await
}

async fn own_channel(state: &AppState, viewer: &Viewer, raw: &str) -> Option<Channel> {
    let id = uuid_of(raw).map(ChannelId::from_uuid)?;
    state.crm().get_channel(viewer.account, id).await.ok()
}

async fn qr_png(State(state): State<AppState>, headers: HeaderMap, Path(raw): Path<String>) -> Response {
    let (ctx, viewer) = match page_viewer(&state, &headers, None).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if viewer.user.role < Role::Admin {
        return ctx.error(StatusCode::FORBIDDEN, "forbidden_title", "admins_only", Some(&viewer.user));
    }
    let Some(channel) = own_channel(&state, &viewer, &raw).await else {
        return not_found(ctx, &viewer, "nav_channels");
    };
    let Some(qr) = session(&state, &channel).and_then(|s| s.qr) else {
        return not_found(ctx, &viewer, "nav_channels");
    };
    match png(&qr) {
        Ok(bytes) => ctx.finish(([(header::CONTENT_TYPE, "image/png")], bytes).into_response()),
        Err(e) => failure(ctx, &viewer, &e, "nav_channels"),
    }
}

#[cfg(feature = "whatsapp-web")]
fn png(qr: &str) -> crm_core::Result<Vec<u8>> {
    crm_whatsapp::web::qr::to_png(qr)
}

#[cfg(not(feature = "whatsapp-web"))]
fn png(_: &str) -> crm_core::Result<Vec<u8>> {
    Err(crm_core::Error::NotFound { entity: "qr code" })
}

async fn pair(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (ctx, viewer) = match form_viewer(&state, &headers, &form, Role::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(channel) = own_channel(&state, &viewer, &raw).await else {
        return not_found(ctx, &viewer, "nav_channels");
    };
    let phone = field(&form, "phone").unwrap_or("").trim().to_owned();
    let id = channel.id.to_string();
    if session(&state, &channel).is_none() {
        let extra =
            json!({ "pair_channel": id, "pair_error": ctx.lang.strings()["pair_not_web"], "pair_phone": phone });
        return render(&state, ctx, viewer, StatusCode::UNPROCESSABLE_ENTITY, extra, None).await;
    }
    if !phone.is_empty() && crm_core::Phone::parse(&phone).is_err() {
        let extra =
            json!({ "pair_channel": id, "pair_error": ctx.lang.strings()["pair_bad_phone"], "pair_phone": phone });
        return render(&state, ctx, viewer, StatusCode::UNPROCESSABLE_ENTITY, extra, None).await;
    }
    match pair_session(&state, &channel, &phone).await {
        Ok(Some(code)) => {
            let extra = json!({ "pair_channel": id, "pairing_code": code, "pair_phone": phone });
            render(&state, ctx, viewer, StatusCode::OK, extra, None).await
        }
        Ok(None) => super::pages::done(ctx, "/dashboard/channels", "done_channel_restarted"),
        Err(e) => {
            let extra = json!({ "pair_channel": id, "pair_error": e.to_string(), "pair_phone": phone });
            let status = crate::error::ApiError::from(e).status();
            let status = if status.is_client_error() { status } else { StatusCode::SERVICE_UNAVAILABLE };
            render(&state, ctx, viewer, status, extra, None).await
        }
    }
}

/// Asks the session for a pairing code for `phone`, or (blank) starts it
/// over; the same steps as `POST /api/v1/channels/{id}/pair`.
#[cfg(feature = "whatsapp-web")]
async fn pair_session(state: &AppState, channel: &Channel, phone: &str) -> crm_core::Result<Option<String>> {
    use crm_whatsapp::web::SessionState;
    let busy = |m: &str| crm_core::Error::conflict("channel", m.to_owned());
    if !channel.enabled {
        return Err(crm_core::Error::validation("channel", "the channel is disabled"));
    }
    let engine = state.whatsapp_web().ok_or_else(|| busy("this server runs no WhatsApp Web sessions"))?;
    let status = engine.status(channel.id).ok_or_else(|| busy("the session is not open in this process"))?;
    if phone.is_empty() {
        engine.restart(channel).await?;
        return Ok(None);
    }
    let phone = crm_core::Phone::parse(phone)?;
    match status.state {
        SessionState::Connected => return Err(busy("the channel is paired and connected")),
        SessionState::LoggedOut | SessionState::Failed { .. } | SessionState::Stopped => {
            engine.restart(channel).await?
        }
        _ => {}
    }
    engine.request_pairing_code(channel.id, &phone, std::time::Duration::from_secs(30)).await.map(Some)
}

#[cfg(not(feature = "whatsapp-web"))]
async fn pair_session(_: &AppState, _: &Channel, _: &str) -> crm_core::Result<Option<String>> {
    Err(crm_core::Error::validation("channel", "this server was built without WhatsApp Web"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_tag_follows_the_code() {
        assert_eq!(qr_tag("2@abc"), qr_tag("2@abc"));
        assert_ne!(qr_tag("2@abc"), qr_tag("2@abd"));
        assert_eq!(qr_tag("x").len(), 16);
    }

    #[test]
    fn every_channel_and_session_state_has_words_in_both_languages() {
        for lang in [super::super::Lang::PtBr, super::super::Lang::En] {
            let strings = lang.strings();
            for s in ["active", "throttled", "disabled"] {
                assert!(strings.contains_key(format!("channel_{s}").as_str()), "{s}");
            }
            for s in ["opening", "pairing", "connected", "conflict", "reconnecting", "logged_out", "failed", "stopped"]
            {
                assert!(strings.contains_key(format!("session_{s}").as_str()), "{s}");
            }
        }
    }
}
