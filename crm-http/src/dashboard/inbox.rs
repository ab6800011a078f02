//! The inbox: conversations by last activity with unread counts, a thread
//! with its delivery ticks and media, the send box (free text inside the
//! customer-service window, approved templates outside it), assignment,
//! and live updates over server-sent events.
//!
//! - `GET /dashboard/inbox[?filter=all|mine|unassigned&after=…]` the list.
//! - `GET /dashboard/inbox/{contact}` the list and the thread; opening it
//!   marks it read for the account ([`Crm::open_thread`]).
//! - `POST /dashboard/inbox/{contact}/send` text or a template, through
//!   the same calls as `POST /api/v1/messages` ([`Crm::render_template_for`],
//!   [`Crm::queue_message`]): the message goes through the send pipeline and
//!   the server refuses free text outside the window. The form's `key`
//!   becomes the client reference, so a form sent twice sends once.
//! - `POST /dashboard/inbox/{contact}/assign` assigns the conversation to a
//!   user of the account, or to nobody.
//! - `GET /dashboard/inbox/events` server-sent events of the viewer's
//!   account, from the process's [`LiveFeed`](crm_core::live::LiveFeed):
//!   `message_new`, `message_status`, `message_updated`, `thread`, and
//!   `resync` when this subscriber fell behind. 401 without a session; the
//!   session is checked again every [`SESSION_RECHECK`] and the stream ends
//!   after [`STREAM_LIFETIME`] (the browser reconnects), so a stream never
//!   outlives its login nor holds a shutdown for long.
//!
//! [`Crm::open_thread`]: crm_core::Crm::open_thread
//! [`Crm::render_template_for`]: crm_core::Crm::render_template_for
//! [`Crm::queue_message`]: crm_core::Crm::queue_message

use std::convert::Infallible;
use std::time::Duration;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use crm_core::domain::inbox::{InboxCursor, InboxFilter, InboxQuery, MAX_UNREAD_COUNTED, ThreadSummary};
use crm_core::live::Live;
use crm_core::{
    AccountId, ContactId, Direction, Error, EventType, MediaKind, Message, MessageContent, MessageStatus, Role,
    SendRequest, TemplateId, User, UserId, Variables,
};

use super::{Ctx, Viewer, to_login, url_query, viewer};
use crate::state::AppState;

/// Threads per page of the list.
const PAGE: u32 = 30;
/// Messages a thread shows.
const THREAD_MESSAGES: u32 = 50;
/// How often an open event stream checks that its session still stands.
pub const SESSION_RECHECK: Duration = Duration::from_secs(30);
/// How long one event stream lasts before the browser reconnects.
pub const STREAM_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Template variables the service fills from the contact when left out.
const CONTACT_VARIABLES: [&str; 4] = ["name", "first_name", "phone", "email"];
/// How long the media links of a page work.
const MEDIA_URL_TTL: Duration = Duration::from_secs(3600);

/// The inbox routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/inbox", get(inbox_page))
        .route("/dashboard/inbox/events", get(events))
        .route("/dashboard/inbox/{contact}", get(thread_page))
        .route("/dashboard/inbox/{contact}/send", post(send))
        .route("/dashboard/inbox/{contact}/assign", post(assign))
}

#[derive(Debug, Default, Deserialize)]
struct ListParams {
    lang: Option<String>,
    filter: Option<String>,
    after: Option<String>,
}

/// The list filter named in the query (`all` when missing or unknown).
fn filter_of(name: Option<&str>, me: UserId) -> (InboxFilter, &'static str) {
    match name {
        Some("mine") => (InboxFilter::Mine(me), "mine"),
        Some("unassigned") => (InboxFilter::Unassigned, "unassigned"),
        _ => (InboxFilter::All, "all"),
    }
}

fn display_name(u: &User) -> String {
    if u.name.trim().is_empty() { u.email.as_str().to_owned() } else { u.name.clone() }
}

/// `dd/mm HH:MM` (UTC) today-ish, with the full time for the `datetime` attribute.
fn when(t: DateTime<Utc>) -> (String, String) {
    (t.format("%d/%m %H:%M").to_string(), t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The tick's symbol for a status (the label comes from the strings).
pub(super) fn tick(status: MessageStatus) -> &'static str {
    match status {
        MessageStatus::Queued => "🕓",
        MessageStatus::Sent => "✓",
        MessageStatus::Delivered | MessageStatus::Read => "✓✓",
        MessageStatus::Failed => "⚠",
    }
}

fn status_label(strings: &std::collections::BTreeMap<&'static str, &'static str>, status: MessageStatus) -> String {
    let key = format!("status_{}", status.as_str());
    strings.get(key.as_str()).copied().unwrap_or(status.as_str()).to_owned()
}

fn preview(content: &MessageContent) -> String {
    let text = content.preview();
    let mut short: String = text.chars().take(80).collect();
    if text.chars().count() > 80 {
        short.push('…');
    }
    short
}

struct ListData {
    threads: Vec<Value>,
    next: Option<String>,
}

async fn list_data(
    state: &AppState,
    ctx: &Ctx,
    viewer: &Viewer,
    params: &ListParams,
    (filter, filter_name): (InboxFilter, &str),
    current: Option<ContactId>,
    users: &[User],
) -> Result<ListData, Error> {
    let after = params.after.as_deref().filter(|a| !a.is_empty()).map(InboxCursor::decode).transpose()?;
    let page = state.crm().list_inbox(viewer.account, &InboxQuery { filter, after, limit: PAGE }).await?;
    let strings = ctx.lang.strings();
    let threads = page.threads.iter().map(|t| thread_row(t, users, &strings, current)).collect();
    let next = page
        .next
        .map(|c| format!("/dashboard/inbox?{}", url_query(&[("filter", filter_name), ("after", &c.encode())])));
    Ok(ListData { threads, next })
}

fn thread_row(
    t: &ThreadSummary,
    users: &[User],
    strings: &std::collections::BTreeMap<&'static str, &'static str>,
    current: Option<ContactId>,
) -> Value {
    let (time, datetime) = when(t.activity_at);
    let assignee = t.assignee_id.and_then(|id| users.iter().find(|u| u.id == id)).map(display_name);
    let last = t.last_message.as_ref();
    json!({
        "id": t.contact_id.to_string(),
        "name": t.name,
        "phone": t.phone,
        "time": time,
        "datetime": datetime,
        "preview": last.map(|m| preview(&m.content)).unwrap_or_default(),
        "outbound": last.is_some_and(|m| m.direction == Direction::Outbound),
        "status": last.map(|m| m.status.as_str()),
        "tick": last.map(|m| tick(m.status)),
        "status_label": last.map(|m| status_label(strings, m.status)),
        "unread": t.unread,
        "unread_text": if t.unread >= MAX_UNREAD_COUNTED { format!("{}+", MAX_UNREAD_COUNTED - 1) } else { t.unread.to_string() },
        "assignee": assignee,
        "current": current == Some(t.contact_id),
    })
}

fn filters(strings: &std::collections::BTreeMap<&'static str, &'static str>, current: &str) -> Vec<Value> {
    ["all", "mine", "unassigned"]
        .iter()
        .map(|f| {
            let key = format!("inbox_filter_{f}");
            json!({ "name": f, "label": strings.get(key.as_str()), "current": *f == current })
        })
        .collect()
}

/// What the page's script shows on live updates: each status's tick and
/// label, and the live indicator's two texts.
fn script_strings(strings: &std::collections::BTreeMap<&'static str, &'static str>) -> Value {
    let statuses = [
        MessageStatus::Queued,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
    ];
    let map: serde_json::Map<String, Value> = statuses
        .iter()
        .map(|s| (s.as_str().to_owned(), json!({ "tick": tick(*s), "label": status_label(strings, *s) })))
        .collect();
    let value = json!({ "ticks": map, "live_on": strings.get("live_on"), "live_off": strings.get("live_off") });
    Value::String(script_json(&value))
}

/// JSON safe inside a `<script>` element: `<`, `>` and `&` escaped as
/// `\u` sequences, so no text can close the element.
fn script_json(value: &Value) -> String {
    value.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

async fn inbox_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<ListParams>) -> Response {
    let ctx = Ctx::new(&state, &headers, q.lang.as_deref());
    let Some(viewer) = viewer(&state, &headers).await else { return ctx.finish(to_login()) };
    let (filter, name) = filter_of(q.filter.as_deref(), viewer.user.id);
    let users = match state.crm().store().list_users(viewer.account).await {
        Ok(u) => u,
        Err(e) => return failure(ctx, &viewer, &e),
    };
    let data = match list_data(&state, &ctx, &viewer, &q, (filter, name), None, &users).await {
        Ok(d) => d,
        Err(e) => return failure(ctx, &viewer, &e),
    };
    let strings = ctx.lang.strings();
    let extra = json!({
        "threads": data.threads, "next": data.next, "filter": name, "filters": filters(&strings, name),
        "thread": null, "script_strings": script_strings(&strings),
    });
    ctx.render(StatusCode::OK, "inbox.html", Some(&viewer.user), "inbox", extra)
}

/// The page for an error: a bad cursor or id is 400/404, the rest 503 (logged).
fn failure(ctx: Ctx, viewer: &Viewer, e: &Error) -> Response {
    match e {
        Error::Validation { .. } => {
            ctx.error(StatusCode::BAD_REQUEST, "nav_inbox", "inbox_bad_request", Some(&viewer.user))
        }
        Error::NotFound { .. } => ctx.error(StatusCode::NOT_FOUND, "nav_inbox", "inbox_not_found", Some(&viewer.user)),
        other => {
            tracing::error!(error = %other, "dashboard inbox: the data could not be read");
            ctx.error(StatusCode::SERVICE_UNAVAILABLE, "nav_inbox", "no_data", Some(&viewer.user))
        }
    }
}

fn contact_id(raw: &str) -> Option<ContactId> {
    uuid::Uuid::try_parse(raw).ok().map(ContactId::from_uuid)
}

/// What the thread page shows beside the list; `send_error` after a refused send.
async fn thread_view(
    state: &AppState,
    ctx: &Ctx,
    viewer: &Viewer,
    contact: ContactId,
    send_error: Option<String>,
    users: &[User],
) -> Result<Value, Error> {
    let crm = state.crm();
    let opened = crm.open_thread(viewer.account, viewer.user.id, contact, THREAD_MESSAGES).await?;
    let strings = ctx.lang.strings();
    let mut messages = Vec::with_capacity(opened.messages.len());
    for m in &opened.messages {
        messages.push(message_view(state, viewer.account, m, &strings).await);
    }
    let (open, closes_at, last_inbound) = window(state, viewer.account, contact).await?;
    let templates = if open { Vec::new() } else { templates(state, viewer.account).await? };
    let assignee = opened.state.assignee_id;
    let choices: Vec<Value> = users
        .iter()
        .map(|u| json!({ "id": u.id.to_string(), "name": display_name(u), "selected": Some(u.id) == assignee }))
        .collect();
    let can_send = viewer.user.role >= Role::Agent;
    Ok(json!({
        "id": contact.to_string(),
        "name": opened.contact.name,
        "phone": opened.contact.phone.to_string(),
        "messages": messages,
        "window_open": open,
        "closes_at": closes_at.map(|t| when(t).0),
        "last_inbound": last_inbound.map(|t| when(t).0),
        "templates": templates,
        "users": choices,
        "assigned": assignee.is_some(),
        "can_send": can_send,
        "send_error": send_error,
        "key": super::random_hex(16).unwrap_or_default(),
    }))
}

/// The default channel's customer-service window: open, when it closes,
/// and when the contact last wrote. Without channels (a library-style
/// fallback messenger) the box stays open and the server decides.
async fn window(
    state: &AppState,
    account: AccountId,
    contact: ContactId,
) -> Result<(bool, Option<DateTime<Utc>>, Option<DateTime<Utc>>), Error> {
    let crm = state.crm();
    let windows = crm.contact_windows(account, contact).await?;
    let channels = crm.list_channels(account).await?;
    let default = channels.iter().find(|c| c.is_default && c.enabled).map(|c| c.id);
    let chosen = windows.channels.iter().find(|w| Some(w.channel_id) == default).or(windows.channels.first());
    Ok(match chosen {
        Some(w) => (w.open, w.closes_at, w.last_inbound_at),
        None => (true, None, windows.last_inbound_at),
    })
}

/// The account's templates with their `{{var}}` fields (up to 200).
async fn templates(state: &AppState, account: AccountId) -> Result<Vec<Value>, Error> {
    let page = crm_core::PageRequest::first(crm_core::PageRequest::MAX_LIMIT)?;
    let list = state.crm().list_templates(account, &page).await?;
    Ok(list
        .items
        .iter()
        .map(|t| {
            json!({
                "id": t.id.to_string(), "name": t.name, "language": t.language, "body": t.body,
                "variables": t.variables.iter().map(|v| json!({
                    "name": v,
                    "from_contact": CONTACT_VARIABLES.contains(&v.as_str()),
                })).collect::<Vec<_>>(),
            })
        })
        .collect())
}

async fn message_view(
    state: &AppState,
    account: AccountId,
    m: &Message,
    strings: &std::collections::BTreeMap<&'static str, &'static str>,
) -> Value {
    let (time, datetime) = when(m.created_at);
    let mut image = None;
    let mut document = None;
    if let MessageContent::Media { kind, filename, media, .. } = &m.content {
        let stored = m.attachment.as_ref().and_then(|a| a.media_id);
        let url = match stored {
            Some(id) => state.media().library.signed_url(account, id, MEDIA_URL_TTL).await.ok().map(|u| u.url),
            None => Some(media.location.clone()).filter(|l| l.starts_with("https://")),
        };
        match (kind, url) {
            (MediaKind::Image | MediaKind::Sticker, Some(url)) if stored.is_some() => image = Some(url),
            (_, Some(url)) => {
                document = Some(json!({ "url": url, "name": filename.clone().unwrap_or_else(|| preview(&m.content)) }))
            }
            _ => {}
        }
    }
    let text = match &m.content {
        MessageContent::Media { caption, .. } => caption.clone().unwrap_or_default(),
        other => other.preview(),
    };
    let template = match &m.content {
        MessageContent::Template { name, .. } => Some(name.clone()),
        _ => None,
    };
    json!({
        "id": m.id.to_string(),
        "direction": m.direction.as_str(),
        "status": m.status.as_str(),
        "tick": tick(m.status),
        "status_label": status_label(strings, m.status),
        "error": m.error.as_ref().map(|e| e.reason.clone()),
        "text": text,
        "template": template,
        "image": image,
        "document": document,
        "time": time,
        "datetime": datetime,
    })
}

async fn thread_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(q): Query<ListParams>,
) -> Response {
    let ctx = Ctx::new(&state, &headers, q.lang.as_deref());
    let Some(viewer) = viewer(&state, &headers).await else { return ctx.finish(to_login()) };
    let Some(contact) = contact_id(&raw) else {
        return ctx.error(StatusCode::NOT_FOUND, "nav_inbox", "inbox_not_found", Some(&viewer.user));
    };
    render_thread(state, ctx, viewer, q, contact, None, StatusCode::OK).await
}

async fn render_thread(
    state: AppState,
    ctx: Ctx,
    viewer: Viewer,
    q: ListParams,
    contact: ContactId,
    send_error: Option<String>,
    status: StatusCode,
) -> Response {
    let (filter, name) = filter_of(q.filter.as_deref(), viewer.user.id);
    // The thread first: opening it marks it read, so the list shows it read.
    let users = match state.crm().store().list_users(viewer.account).await {
        Ok(u) => u,
        Err(e) => return failure(ctx, &viewer, &e),
    };
    let thread = match thread_view(&state, &ctx, &viewer, contact, send_error, &users).await {
        Ok(t) => t,
        Err(e) => return failure(ctx, &viewer, &e),
    };
    let data = match list_data(&state, &ctx, &viewer, &q, (filter, name), Some(contact), &users).await {
        Ok(d) => d,
        Err(e) => return failure(ctx, &viewer, &e),
    };
    let strings = ctx.lang.strings();
    let extra = json!({
        "threads": data.threads, "next": data.next, "filter": name, "filters": filters(&strings, name),
        "thread": thread, "script_strings": script_strings(&strings),
    });
    ctx.render(status, "inbox.html", Some(&viewer.user), "inbox", extra)
}

/// One form field.
fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Where a form goes back to: the thread, with the list's filter.
fn back(contact: ContactId, filter: Option<&str>) -> Response {
    let filter = match filter {
        Some(f @ ("mine" | "unassigned")) => format!("?filter={f}"),
        _ => String::new(),
    };
    Redirect::to(&format!("/dashboard/inbox/{contact}{filter}")).into_response()
}

/// Checks the form's token and the viewer's role; the response to send back otherwise.
async fn form_viewer(
    state: &AppState,
    headers: &HeaderMap,
    form: &[(String, String)],
    raw: &str,
) -> Result<(Ctx, Viewer, ContactId), Response> {
    let ctx = Ctx::new(state, headers, None);
    if !ctx.csrf_ok(headers, field(form, "csrf")) {
        return Err(ctx.error(StatusCode::FORBIDDEN, "forbidden_title", "csrf_failed", None));
    }
    let Some(viewer) = viewer(state, headers).await else { return Err(ctx.finish(to_login())) };
    if viewer.user.role < Role::Agent {
        return Err(ctx.error(StatusCode::FORBIDDEN, "forbidden_title", "inbox_agents_only", Some(&viewer.user)));
    }
    let Some(contact) = contact_id(raw) else {
        return Err(ctx.error(StatusCode::NOT_FOUND, "nav_inbox", "inbox_not_found", Some(&viewer.user)));
    };
    Ok((ctx, viewer, contact))
}

async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (ctx, viewer, contact) = match form_viewer(&state, &headers, &form, &raw).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let crm = state.crm();
    let account = viewer.account;
    let content = match field(&form, "template").filter(|t| !t.is_empty()) {
        None => {
            let text = field(&form, "text").unwrap_or("").trim();
            if text.is_empty() {
                let message = ctx.lang.strings()["send_empty"].to_owned();
                let q = ListParams { filter: field(&form, "filter").map(str::to_owned), ..ListParams::default() };
                return render_thread(state, ctx, viewer, q, contact, Some(message), StatusCode::UNPROCESSABLE_ENTITY)
                    .await;
            }
            Ok(MessageContent::text(text))
        }
        Some(id) => {
            let variables: Variables = form
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("var.")?.to_owned(), v.trim().to_owned())))
                .filter(|(_, v)| !v.is_empty())
                .collect();
            match uuid::Uuid::try_parse(id).map(TemplateId::from_uuid) {
                Err(_) => Err(Error::validation("template", "not a template of this account")),
                Ok(id) => match crm.get_template(account, id).await {
                    Ok(t) => crm.render_template_for(account, contact, &t.name, &t.language, variables).await,
                    Err(e) => Err(e),
                },
            }
        }
    };
    let result = match content {
        Ok(content) => {
            let mut req = SendRequest::new(contact, content);
            req.client_reference = field(&form, "key")
                .filter(|k| (16..=64).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(|k| format!("dashboard:{k}"));
            crm.queue_message(account, req).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(queued) => {
            if !queued.replayed {
                state.metrics().observe_message("queued");
            }
            ctx.finish(back(contact, field(&form, "filter")))
        }
        Err(e) => {
            let message = send_error_text(&ctx, &e);
            let shown = e.to_string();
            let status = crate::error::ApiError::from(e).status();
            if status.is_server_error() {
                tracing::error!(error = %shown, "dashboard inbox: a message could not be queued");
            }
            let q = ListParams { filter: field(&form, "filter").map(str::to_owned), ..ListParams::default() };
            let status = if status.is_client_error() { status } else { StatusCode::SERVICE_UNAVAILABLE };
            render_thread(state, ctx, viewer, q, contact, Some(message), status).await
        }
    }
}

/// What a refused send says: the window, a missing template value, or the
/// reason the service gave (its validation reasons name no secret).
fn send_error_text(ctx: &Ctx, e: &Error) -> String {
    let strings = ctx.lang.strings();
    match e {
        Error::Validation { field, reason } if field == "content.type" => {
            format!("{} ({reason})", strings["send_window_closed"])
        }
        Error::Validation { field, reason } => format!("{} {field}: {reason}", strings["send_refused"]),
        Error::NotFound { .. } => strings["inbox_not_found"].to_owned(),
        Error::Conflict { reason, .. } => format!("{} {reason}", strings["send_refused"]),
        _ => strings["send_failed"].to_owned(),
    }
}

async fn assign(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (ctx, viewer, contact) = match form_viewer(&state, &headers, &form, &raw).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let assignee = match field(&form, "assignee").unwrap_or("").trim() {
        "" => None,
        raw => match uuid::Uuid::try_parse(raw) {
            Ok(id) => Some(UserId::from_uuid(id)),
            Err(_) => {
                return ctx.error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "nav_inbox",
                    "inbox_bad_request",
                    Some(&viewer.user),
                );
            }
        },
    };
    match state.crm().assign_thread(viewer.account, contact, assignee, Some(viewer.user.id)).await {
        Ok(_) => ctx.finish(back(contact, field(&form, "filter"))),
        Err(e) => failure(ctx, &viewer, &e),
    }
}

/// The SSE name and data of an event the inbox shows, or `None`.
pub(super) fn sse_of(event: &crm_core::Event) -> Option<(&'static str, Value)> {
    let p = &event.payload;
    let message = p.get("message");
    let pick = |key: &str, nested: &str| {
        p.get(key).or_else(|| message.and_then(|m| m.get(nested))).cloned().unwrap_or(Value::Null)
    };
    let name = match event.event_type {
        ref t if *t == EventType::MESSAGE_QUEUED || *t == EventType::MESSAGE_RECEIVED => "message_new",
        ref t if *t == EventType::MESSAGE_STATUS_UPDATED => "message_status",
        ref t if *t == EventType::MESSAGE_UPDATED => "message_updated",
        ref t if *t == EventType::THREAD_ASSIGNED => "thread",
        // The management pages re-read themselves on these.
        ref t if t.as_str().starts_with("campaign.") => "campaign",
        ref t if t.as_str().starts_with("channel.") => "channel",
        ref t if t.as_str().starts_with("webhook.") => "webhook",
        _ => return None,
    };
    let data = json!({
        "contact_id": pick("contact_id", "contact_id"),
        "message_id": pick("message_id", "id"),
        "status": pick("status", "status"),
        "direction": pick("direction", "direction"),
        "error": p.get("error").and_then(|e| e.get("reason")).cloned().unwrap_or(Value::Null),
        "assignee_id": p.get("assignee_id").cloned().unwrap_or(Value::Null),
    });
    Some((name, data))
}

async fn events(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(viewer) = viewer(&state, &headers).await else {
        return (StatusCode::UNAUTHORIZED, [(axum::http::header::CACHE_CONTROL, "no-store")], "sign in first")
            .into_response();
    };
    let rx = state.live().subscribe();
    let token = super::cookie(&headers, super::SESSION_COOKIE).unwrap_or("").to_owned();
    let stream = live_stream(state, viewer.account, token, rx);
    let mut response = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response.headers_mut().insert("x-accel-buffering", axum::http::HeaderValue::from_static("no"));
    response
}

struct Listening {
    state: AppState,
    account: AccountId,
    token: String,
    rx: crm_core::live::LiveReceiver,
    recheck: tokio::time::Interval,
    ends: tokio::time::Instant,
    greeted: bool,
}

/// The viewer's account's events as SSE, until the session ends, the
/// stream's lifetime is up or the feed stops.
fn live_stream(
    state: AppState,
    account: AccountId,
    token: String,
    rx: crm_core::live::LiveReceiver,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let mut recheck = tokio::time::interval(SESSION_RECHECK);
    recheck.reset();
    let ends = tokio::time::Instant::now() + STREAM_LIFETIME;
    let start = Listening { state, account, token, rx, recheck, ends, greeted: false };
    futures_util::stream::unfold(start, |mut l| async move {
        if !l.greeted {
            l.greeted = true;
            // Tells the page it is live (and how soon to come back after a drop).
            let hello = SseEvent::default().event("ready").data("{}").retry(Duration::from_secs(2));
            return Some((Ok(hello), l));
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(l.ends) => return None,
                _ = l.recheck.tick() => {
                    if l.state.crm().authenticate_session(&l.token).await.is_err() {
                        return None;
                    }
                }
                next = l.rx.next() => match next {
                    Live::Closed => return None,
                    Live::Lagged(_) => return Some((Ok(SseEvent::default().event("resync").data("{}")), l)),
                    Live::Event(e) if e.account_id == l.account => {
                        if let Some((name, data)) = sse_of(&e) {
                            return Some((Ok(SseEvent::default().event(name).data(data.to_string())), l));
                        }
                    }
                    Live::Event(_) => {}
                },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_events_map_to_sse_names_and_the_rest_is_left_out() {
        let account = AccountId::new();
        let mid = crm_core::MessageId::new();
        let cid = ContactId::new();
        let status = crm_core::Event::new(
            account,
            EventType::MESSAGE_STATUS_UPDATED,
            &json!({ "message_id": mid, "contact_id": cid, "status": "failed", "direction": "outbound",
                     "error": { "code": "131047", "reason": "re-engagement" } }),
            Utc::now(),
        );
        let (name, data) = sse_of(&status).unwrap();
        assert_eq!(name, "message_status");
        assert_eq!(data["message_id"], json!(mid));
        assert_eq!((data["status"].as_str(), data["error"].as_str()), (Some("failed"), Some("re-engagement")));
        let received = crm_core::Event::new(
            account,
            EventType::MESSAGE_RECEIVED,
            &json!({ "message": { "id": mid, "contact_id": cid, "status": "delivered", "direction": "inbound" } }),
            Utc::now(),
        );
        let (name, data) = sse_of(&received).unwrap();
        assert_eq!((name, data["contact_id"].clone()), ("message_new", json!(cid)));
        let other = crm_core::Event::new(account, EventType::CONTACT_UPDATED, &json!({}), Utc::now());
        assert!(sse_of(&other).is_none());
    }

    #[test]
    fn the_scripts_json_cannot_close_its_element() {
        let out = script_json(&json!({ "x": "</script><b>&" }));
        assert!(!out.contains('<') && !out.contains('>') && !out.contains('&'), "{out}");
        let back: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["x"], "</script><b>&");
        for lang in [super::super::Lang::PtBr, super::super::Lang::En] {
            let strings = lang.strings();
            let v: Value = serde_json::from_str(script_strings(&strings).as_str().unwrap()).unwrap();
            assert_eq!(v["ticks"]["read"]["tick"], "✓✓");
            assert!(v["ticks"]["read"]["label"].as_str().is_some_and(|l| !l.is_empty()));
        }
    }

    #[test]
    fn ticks_and_filters() {
        assert_eq!(tick(MessageStatus::Queued), "🕓");
        assert_eq!(tick(MessageStatus::Delivered), tick(MessageStatus::Read));
        let me = UserId::new();
        assert_eq!(filter_of(Some("mine"), me), (InboxFilter::Mine(me), "mine"));
        assert_eq!(filter_of(Some("bogus"), me).1, "all");
        assert_eq!(preview(&MessageContent::text("a".repeat(100))).chars().count(), 81);
    }
}
