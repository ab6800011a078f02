//! The webhooks pages (admins only, like `/api/v1/webhooks/*`): the
//! account's endpoints — create one, enable or disable it, rotate its
//! secret, send a test event — and its deliveries with every attempt
//! (status, response code, time taken, error, the answer's start), with a
//! button that sends a delivery again. Everything goes through the same
//! [`crm_webhooks::Webhooks`] service as the API.
//!
//! - `GET /dashboard/webhooks` endpoints and the create form.
//! - `POST /dashboard/webhooks` creates; the answer is the page itself
//!   (201) showing the new signing secret this once — it is never put in
//!   a URL, a cookie or a log.
//! - `POST /dashboard/webhooks/{id}/{enable|disable|test}` and
//!   `POST /dashboard/webhooks/{id}/rotate` (the new secret shown once,
//!   the old one signing beside it for the service's overlap).
//! - `GET /dashboard/webhooks/deliveries[?endpoint=…&status=…&after=…]`.
//! - `GET /dashboard/webhooks/deliveries/{id}` with its attempts.
//! - `POST /dashboard/webhooks/deliveries/{id}/replay`.

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crm_core::{
    DeliveryQuery, DeliveryStatus, EndpointView, Error, PageRequest, Role, WebhookAttempt, WebhookDelivery,
    WebhookDeliveryId, WebhookEndpointId,
};
use crm_webhooks::{EndpointPatch, NewEndpoint, Webhooks};

use super::pages::{
    Params, Strings, admin_page, done, failure, field, form_for, form_viewer, merged, not_found, notice, uuid_of, when,
};
use super::{Ctx, Viewer};
use crate::state::AppState;

/// Deliveries per page.
const PAGE: u32 = 50;

/// The webhooks routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/webhooks", get(endpoints_page).post(create))
        .route("/dashboard/webhooks/deliveries", get(deliveries_page))
        .route("/dashboard/webhooks/deliveries/{id}", get(delivery_page))
        .route("/dashboard/webhooks/deliveries/{id}/replay", post(replay))
        .route("/dashboard/webhooks/{id}/{action}", post(act))
}

fn endpoint_json(e: &EndpointView, strings: &Strings) -> Value {
    let state = if e.enabled { "enabled" } else { "disabled" };
    let switch = if e.enabled { "disable" } else { "enable" };
    let actions: Vec<Value> = [switch, "test", "rotate"]
        .iter()
        .map(|a| json!({ "action": a, "label": strings.get(format!("endpoint_{a}").as_str()) }))
        .collect();
    json!({
        "actions": actions,
        "id": e.id.to_string(),
        "url": e.url,
        "description": e.description,
        "events": e.event_types.as_ref().map(|t| t.join(", ")),
        "enabled": e.enabled,
        "state": state,
        "state_label": strings.get(format!("endpoint_{state}").as_str()),
        "disabled_reason": e.disabled_reason,
        "failing_since": e.failing_since.map(when),
        "rotating_until": e.rotating_until.map(when),
        "rate": e.rate_limit_per_second,
        "created": when(e.created_at),
        "version": e.version,
    })
}

fn status_label(strings: &Strings, status: DeliveryStatus) -> &'static str {
    strings.get(format!("delivery_{}", status.as_str()).as_str()).copied().unwrap_or("")
}

fn delivery_json(d: &WebhookDelivery, strings: &Strings, urls: &[(WebhookEndpointId, String)]) -> Value {
    json!({
        "id": d.id.to_string(),
        "endpoint_id": d.endpoint_id.to_string(),
        "endpoint_url": urls.iter().find(|(id, _)| *id == d.endpoint_id).map(|(_, u)| u.clone()),
        "event_type": d.event_type.as_str(),
        "event_id": d.event_id.to_string(),
        "status": d.status.as_str(),
        "status_label": status_label(strings, d.status),
        "attempts": d.attempts,
        "code": d.last_status_code,
        "error": d.last_error,
        "next": d.next_attempt_at.map(when),
        "created": when(d.created_at),
        "updated": when(d.updated_at),
    })
}

fn attempt_json(a: &WebhookAttempt) -> Value {
    json!({
        "at": when(a.at),
        "code": a.status_code,
        "latency_ms": a.latency_ms,
        "succeeded": a.succeeded,
        "error": a.error,
        "excerpt": a.response_excerpt,
    })
}

/// Renders the endpoints page; `secret` is a secret to show this once,
/// `form_error` a refused create with what was typed.
async fn render_endpoints(
    state: &AppState,
    ctx: Ctx,
    viewer: Viewer,
    status: StatusCode,
    extra: Value,
    done_key: Option<&str>,
) -> Response {
    let w = match state.webhooks() {
        Ok(w) => w,
        Err(e) => return failure(ctx, &viewer, &e, "nav_webhooks"),
    };
    let list = match w.endpoints(viewer.account).await {
        Ok(l) => l,
        Err(e) => return failure(ctx, &viewer, &e, "nav_webhooks"),
    };
    let strings = ctx.lang.strings();
    let base = json!({
        "endpoints": list.iter().map(|e| endpoint_json(&e.view(), &strings)).collect::<Vec<_>>(),
        "notice": notice(&strings, done_key),
        "secret": null, "form_error": null, "form": {},
    });
    let page = merged(base, extra);
    ctx.render(status, "webhooks.html", Some(&viewer.user), "webhooks", page)
}

async fn endpoints_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Params>) -> Response {
    let (ctx, viewer) = match admin_page(&state, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    render_endpoints(&state, ctx, viewer, StatusCode::OK, json!({}), q.done.as_deref()).await
}

/// Event names from a comma- or space-separated field; `None` (every
/// event) when blank.
fn event_list(raw: &str) -> Option<Vec<String>> {
    let names: Vec<String> =
        raw.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    (!names.is_empty()).then_some(names)
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (ctx, viewer) = match form_viewer(&state, &headers, &form, Role::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let w = match state.webhooks() {
        Ok(w) => w,
        Err(e) => return failure(ctx, &viewer, &e, "nav_webhooks"),
    };
    let url = field(&form, "url").unwrap_or("").trim().to_owned();
    let description = field(&form, "description").unwrap_or("").trim().to_owned();
    let events = field(&form, "event_types").unwrap_or("").to_owned();
    let input = NewEndpoint {
        url: url.clone(),
        description: description.clone(),
        event_types: event_list(&events),
        ..NewEndpoint::default()
    };
    match w.create_endpoint(viewer.account, input).await {
        Ok((endpoint, secret)) => {
            let shown = json!({ "secret": { "value": secret, "url": endpoint.url } });
            render_endpoints(&state, ctx, viewer, StatusCode::CREATED, shown, Some("done_endpoint_created")).await
        }
        Err(e @ (Error::Validation { .. } | Error::Conflict { .. })) => {
            let extra = json!({
                "form_error": e.to_string(),
                "form": { "url": url, "description": description, "event_types": events },
            });
            render_endpoints(&state, ctx, viewer, StatusCode::UNPROCESSABLE_ENTITY, extra, None).await
        }
        Err(e) => failure(ctx, &viewer, &e, "nav_webhooks"),
    }
}

async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((raw, action)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (ctx, viewer, id) =
        match form_for(&state, &headers, &form, (&raw, "nav_webhooks"), WebhookEndpointId::from_uuid).await {
            Ok(v) => v,
            Err(r) => return r,
        };
    let w = match state.webhooks() {
        Ok(w) => w,
        Err(e) => return failure(ctx, &viewer, &e, "nav_webhooks"),
    };
    let account = viewer.account;
    let result = match action.as_str() {
        "enable" => switch(&w, account, id, true).await,
        "disable" => switch(&w, account, id, false).await,
        "test" => w.send_test(account, id).await.map(|_| ()),
        "rotate" => {
            return match w.rotate_secret(account, id, None, None).await {
                Ok((endpoint, secret)) => {
                    let shown = json!({ "secret": { "value": secret, "url": endpoint.url } });
                    render_endpoints(&state, ctx, viewer, StatusCode::OK, shown, Some("done_endpoint_rotated")).await
                }
                Err(e) => failure(ctx, &viewer, &e, "nav_webhooks"),
            };
        }
        _ => return not_found(ctx, &viewer, "nav_webhooks"),
    };
    match result {
        Ok(()) => done(ctx, "/dashboard/webhooks", &format!("done_endpoint_{action}")),
        Err(e) => failure(ctx, &viewer, &e, "nav_webhooks"),
    }
}

/// Enables (clearing the failure state) or disables an endpoint.
async fn switch(w: &Webhooks, account: crm_core::AccountId, id: WebhookEndpointId, on: bool) -> crm_core::Result<()> {
    let current = w.endpoint(account, id).await?;
    let patch = EndpointPatch { version: current.version, enabled: Some(on), ..EndpointPatch::default() };
    w.update_endpoint(account, id, patch).await.map(|_| ())
}

async fn deliveries_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Params>) -> Response {
    let (ctx, viewer) = match admin_page(&state, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let w = match state.webhooks() {
        Ok(w) => w,
        Err(e) => return failure(ctx, &viewer, &e, "nav_webhooks"),
    };
    let endpoint = q.endpoint.as_deref().unwrap_or("").trim();
    let status = q.status.as_deref().unwrap_or("").trim();
    let query = (|| {
        Ok::<_, Error>(DeliveryQuery {
            endpoint_id: match endpoint {
                "" => None,
                raw => Some(
                    uuid_of(raw)
                        .map(WebhookEndpointId::from_uuid)
                        .ok_or_else(|| Error::validation("endpoint", "not an endpoint of this account"))?,
                ),
            },
            event_id: None,
            status: Some(status).filter(|s| !s.is_empty()).map(DeliveryStatus::parse).transpose()?,
            page: PageRequest::new(q.after.as_deref().filter(|a| !a.is_empty()), PAGE)?,
        })
    })();
    let query = match query {
        Ok(q) => q,
        Err(e) => return failure(ctx, &viewer, &e, "nav_webhooks"),
    };
    let (list, endpoints) = match (w.deliveries(viewer.account, &query).await, w.endpoints(viewer.account).await) {
        (Ok(l), Ok(e)) => (l, e),
        (Err(e), _) | (_, Err(e)) => return failure(ctx, &viewer, &e, "nav_webhooks"),
    };
    let urls: Vec<(WebhookEndpointId, String)> = endpoints.iter().map(|e| (e.id, e.url.clone())).collect();
    let strings = ctx.lang.strings();
    let next = list.next_cursor.map(|c| {
        format!(
            "/dashboard/webhooks/deliveries?{}",
            super::url_query(&[("endpoint", endpoint), ("status", status), ("after", &c)])
        )
    });
    let statuses: Vec<Value> = [DeliveryStatus::Pending, DeliveryStatus::Succeeded, DeliveryStatus::Failed]
        .iter()
        .map(|s| json!({ "value": s.as_str(), "label": status_label(&strings, *s) }))
        .collect();
    let extra = json!({
        "deliveries": list.items.iter().map(|d| delivery_json(d, &strings, &urls)).collect::<Vec<_>>(),
        "endpoints": urls.iter().map(|(id, url)| json!({ "id": id.to_string(), "url": url })).collect::<Vec<_>>(),
        "statuses": statuses, "endpoint": endpoint, "status": status, "next": next,
    });
    ctx.render(StatusCode::OK, "webhook_deliveries.html", Some(&viewer.user), "webhooks", extra)
}

fn delivery_id(raw: &str) -> Option<WebhookDeliveryId> {
    uuid_of(raw).map(WebhookDeliveryId::from_uuid)
}

async fn delivery_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(q): Query<Params>,
) -> Response {
    let (ctx, viewer) = match admin_page(&state, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = delivery_id(&raw) else { return not_found(ctx, &viewer, "nav_webhooks") };
    let w = match state.webhooks() {
        Ok(w) => w,
        Err(e) => return failure(ctx, &viewer, &e, "nav_webhooks"),
    };
    let (d, attempts) = match w.delivery(viewer.account, id).await {
        Ok(d) => match w.attempts(viewer.account, id).await {
            Ok(a) => (d, a),
            Err(e) => return failure(ctx, &viewer, &e, "nav_webhooks"),
        },
        Err(e) => return failure(ctx, &viewer, &e, "nav_webhooks"),
    };
    let url = w.endpoint(viewer.account, d.endpoint_id).await.map(|e| e.url).unwrap_or_default();
    let strings = ctx.lang.strings();
    let extra = json!({
        "delivery": delivery_json(&d, &strings, &[(d.endpoint_id, url)]),
        "attempts": attempts.iter().map(attempt_json).collect::<Vec<_>>(),
        "notice": notice(&strings, q.done.as_deref()),
    });
    ctx.render(StatusCode::OK, "webhook_delivery.html", Some(&viewer.user), "webhooks", extra)
}

async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (ctx, viewer, id) =
        match form_for(&state, &headers, &form, (&raw, "nav_webhooks"), WebhookDeliveryId::from_uuid).await {
            Ok(v) => v,
            Err(r) => return r,
        };
    let w = match state.webhooks() {
        Ok(w) => w,
        Err(e) => return failure(ctx, &viewer, &e, "nav_webhooks"),
    };
    match w.replay(viewer.account, id).await {
        Ok(_) => done(ctx, &format!("/dashboard/webhooks/deliveries/{id}"), "done_delivery_replayed"),
        Err(e) => failure(ctx, &viewer, &e, "nav_webhooks"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_filters_read_commas_and_spaces_and_blank_means_every_event() {
        assert_eq!(event_list(""), None);
        assert_eq!(event_list(" , "), None);
        assert_eq!(
            event_list("contact.created, message.*  campaign.paused"),
            Some(vec!["contact.created".into(), "message.*".into(), "campaign.paused".into()])
        );
    }

    #[test]
    fn every_delivery_status_and_endpoint_action_has_words_in_both_languages() {
        for lang in [super::super::Lang::PtBr, super::super::Lang::En] {
            let strings = lang.strings();
            for s in [DeliveryStatus::Pending, DeliveryStatus::Succeeded, DeliveryStatus::Failed] {
                assert!(!status_label(&strings, s).is_empty(), "{s:?}");
            }
            for key in [
                "done_endpoint_enable",
                "done_endpoint_disable",
                "done_endpoint_test",
                "done_endpoint_rotated",
                "done_endpoint_created",
                "done_delivery_replayed",
                "endpoint_enabled",
                "endpoint_disabled",
            ] {
                assert!(strings.contains_key(key), "{key}");
            }
        }
    }
}
