//! What the management pages (campaigns, webhooks, …) share: the viewer
//! of a page, the checks of a form (CSRF token first, then the session,
//! then the role), the notice a form leaves after its redirect, and the
//! page an error becomes.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crm_core::{Error, Role};

use super::{Ctx, Viewer, to_login, viewer};
use crate::state::AppState;

/// The page's strings.
pub(super) type Strings = BTreeMap<&'static str, &'static str>;

/// The query of a management page: the language switch, the notice of the
/// form that led here, a page cursor and the list's filters.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Params {
    pub lang: Option<String>,
    pub done: Option<String>,
    pub after: Option<String>,
    pub endpoint: Option<String>,
    pub status: Option<String>,
}

/// One form field.
pub(super) fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `dd/mm/yyyy HH:MM` (UTC) and the RFC 3339 form for `datetime`.
pub(super) fn when(t: DateTime<Utc>) -> Value {
    json!({ "text": t.format("%d/%m/%Y %H:%M").to_string(), "iso": t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) })
}

/// The signed-in viewer of a page, or the response that sends to the login.
pub(super) async fn page_viewer(
    state: &AppState,
    headers: &HeaderMap,
    lang: Option<&str>,
) -> Result<(Ctx, Viewer), Response> {
    let ctx = Ctx::new(state, headers, lang);
    match viewer(state, headers).await {
        Some(v) => Ok((ctx, v)),
        None => Err(ctx.finish(to_login())),
    }
}

/// The viewer of a page only admins see (403 for the others).
pub(super) async fn admin_page(
    state: &AppState,
    headers: &HeaderMap,
    lang: Option<&str>,
) -> Result<(Ctx, Viewer), Response> {
    let (ctx, viewer) = page_viewer(state, headers, lang).await?;
    if viewer.user.role < Role::Admin {
        return Err(ctx.error(StatusCode::FORBIDDEN, "forbidden_title", "admins_only", Some(&viewer.user)));
    }
    Ok((ctx, viewer))
}

/// Checks a posted form: the CSRF token (403 before anything else), the
/// session (to the login) and the role `at_least` (403).
pub(super) async fn form_viewer(
    state: &AppState,
    headers: &HeaderMap,
    form: &[(String, String)],
    at_least: Role,
) -> Result<(Ctx, Viewer), Response> {
    let ctx = Ctx::new(state, headers, None);
    if !ctx.csrf_ok(headers, field(form, "csrf")) {
        return Err(ctx.error(StatusCode::FORBIDDEN, "forbidden_title", "csrf_failed", None));
    }
    let Some(viewer) = viewer(state, headers).await else { return Err(ctx.finish(to_login())) };
    if viewer.user.role < at_least {
        return Err(ctx.error(StatusCode::FORBIDDEN, "forbidden_title", "admins_only", Some(&viewer.user)));
    }
    Ok((ctx, viewer))
}

/// [`form_viewer`] for an admin's form posted to a thing's URL: also reads
/// the thing's id from the path segment `raw` (404 when it is not one).
pub(super) async fn form_for<T>(
    state: &AppState,
    headers: &HeaderMap,
    form: &[(String, String)],
    place: (&str, &str),
    id: fn(uuid::Uuid) -> T,
) -> Result<(Ctx, Viewer, T), Response> {
    form_for_role(state, headers, form, place, Role::Admin, id).await
}

/// [`form_for`] for the role `at_least`.
pub(super) async fn form_for_role<T>(
    state: &AppState,
    headers: &HeaderMap,
    form: &[(String, String)],
    (raw, heading): (&str, &str),
    at_least: Role,
    id: fn(uuid::Uuid) -> T,
) -> Result<(Ctx, Viewer, T), Response> {
    let (ctx, viewer) = form_viewer(state, headers, form, at_least).await?;
    match uuid_of(raw) {
        Some(u) => Ok((ctx, viewer, id(u))),
        None => Err(not_found(ctx, &viewer, heading)),
    }
}

/// `base` with the fields of `extra` set over it.
pub(super) fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(extra)) = (base.as_object_mut(), extra) {
        b.extend(extra);
    }
    base
}

/// A redirect after a form worked, naming what was done (`?done=key`, a
/// string key the next page shows as its notice).
pub(super) fn done(ctx: Ctx, path: &str, key: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    ctx.finish(Redirect::to(&format!("{path}{sep}done={key}")).into_response())
}

/// The notice for a `done` key (only keys starting with `done_` are shown).
pub(super) fn notice(strings: &Strings, key: Option<&str>) -> Option<&'static str> {
    let key = key?;
    if !key.starts_with("done_") || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return None;
    }
    strings.get(key).copied()
}

/// The page an error becomes: 400/404/409/422 with the service's reason
/// (they name no secret), anything else 503 (logged, not shown).
pub(super) fn failure(ctx: Ctx, viewer: &Viewer, e: &Error, heading: &str) -> Response {
    let strings = ctx.lang.strings();
    let (status, message) = match e {
        Error::Validation { field, reason } => {
            (StatusCode::UNPROCESSABLE_ENTITY, format!("{} {field}: {reason}", strings["refused"]))
        }
        Error::NotFound { .. } => (StatusCode::NOT_FOUND, strings["not_found"].to_owned()),
        Error::Conflict { reason, .. } => (StatusCode::CONFLICT, format!("{} {reason}", strings["refused"])),
        Error::Forbidden { .. } => (StatusCode::FORBIDDEN, strings["admins_only"].to_owned()),
        other => {
            tracing::error!(error = %other, page = heading, "dashboard: the request could not be completed");
            (StatusCode::SERVICE_UNAVAILABLE, strings["no_data"].to_owned())
        }
    };
    let extra = json!({ "heading": strings.get(heading), "message": message });
    ctx.render(status, "error.html", Some(&viewer.user), "error", extra)
}

/// A path segment as a UUID, or `None`.
pub(super) fn uuid_of(raw: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::try_parse(raw).ok()
}

/// The 404 page for an id that is not one.
pub(super) fn not_found(ctx: Ctx, viewer: &Viewer, heading: &str) -> Response {
    ctx.error(StatusCode::NOT_FOUND, heading, "not_found", Some(&viewer.user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_only_known_done_keys() {
        let strings = super::super::Lang::En.strings();
        assert!(notice(&strings, Some("done_campaign_pause")).is_some());
        assert_eq!(notice(&strings, Some("login_failed")), None, "only done_ keys");
        assert_eq!(notice(&strings, Some("done_<b>")), None);
        assert_eq!(notice(&strings, Some("done_nothing_like_this")), None);
        assert_eq!(notice(&strings, None), None);
    }
}
