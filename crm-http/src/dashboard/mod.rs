//! The dashboard: server-rendered HTML pages under `/dashboard`, in
//! Brazilian Portuguese by default and English on request.
//!
//! - Templates (minijinja) and the one stylesheet and script are embedded in
//!   the binary; nothing is loaded from elsewhere.
//! - Login is the users' e-mail and password ([`Crm::verify_login`] through
//!   the same throttle as `POST /api/v1/auth/login`); the login session's
//!   token lives in the `crm_session` cookie (`HttpOnly`, `SameSite=Lax`,
//!   `Secure` with `CRM_SECURE_COOKIES`, path `/dashboard`).
//! - Every form carries a CSRF token that must equal the `crm_csrf` cookie
//!   (`HttpOnly`, `SameSite=Strict`); a POST without it is refused with 403.
//! - The language is the `lang` query parameter (remembered in the
//!   `crm_lang` cookie), else the cookie, else `Accept-Language`.
//!
//! The inbox (conversations, threads, the send box, assignment and live
//! updates over server-sent events) is [`inbox`]. The management pages
//! each have a module: `campaigns` (progress, pause/resume/cancel),
//! `webhooks` (endpoints, deliveries, attempts, replay), `channels`
//! (state, throttling, the WhatsApp Web QR code live, pairing by code),
//! `admin` (API keys shown once and revoked, users created with a role),
//! `contact_form` (create/edit a contact, its score history), `automation`
//! (rules and sequences, enable/disable, runs and enrolments);
//! what they share (form checks, notices, error pages) is in `pages`. The
//! billing page (`/dashboard/billing`: plan, status, next invoice, checkout,
//! portal, cancel) is the `billing` module.
//!
//! Handlers gather data through the [`Crm`] service and compute metrics with
//! [`crm_core::dashboard`]; no business rule lives here.
//!
//! [`Crm`]: crm_core::Crm
//! [`Crm::verify_login`]: crm_core::Crm::verify_login

mod admin;
mod automation;
#[cfg(feature = "stripe")]
mod billing;
mod campaigns;
mod channels;
mod contact_form;
mod i18n;
pub mod inbox;
mod overview;
mod pages;
mod strings_manage;
#[cfg(feature = "webhooks")]
mod webhooks;

pub use i18n::Lang;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Duration;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::OnceLock;

use crm_core::dashboard::{self as metrics, Period};
use crm_core::{AccountId, ContactQuery, ContactSearch, LeadStage, PageRequest, SessionId, Tag, User};

use crate::state::AppState;

/// The session cookie (a login session token, `crs_…`).
pub const SESSION_COOKIE: &str = "crm_session";
/// The CSRF cookie every form's `csrf` field must equal.
pub const CSRF_COOKIE: &str = "crm_csrf";
/// The remembered language.
pub const LANG_COOKIE: &str = "crm_lang";

/// The dashboard's routes (HTML, outside the OpenAPI document).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(overview_page))
        .route("/dashboard/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard/login", get(login_page).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/contacts", get(contacts_page))
        .route("/dashboard/assets/app.css", get(stylesheet))
        .route("/dashboard/assets/app.js", get(script))
        .merge(inbox::routes())
        .merge(campaigns::routes())
        .merge(channels::routes())
        .merge(admin::routes())
        .merge(contact_form::routes())
        .merge(automation::routes())
        .merge(optional_routes())
}

/// The pages of optional features, when built in.
fn optional_routes() -> Router<AppState> {
    let router = Router::new();
    #[cfg(feature = "webhooks")]
    let router = router.merge(webhooks::routes());
    #[cfg(feature = "stripe")]
    let router = router.merge(billing::routes());
    router
}

const TEMPLATES: [(&str, &str); 23] = [
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("contacts.html", include_str!("templates/contacts.html")),
    ("inbox.html", include_str!("templates/inbox.html")),
    ("billing.html", include_str!("templates/billing.html")),
    ("_notice.html", include_str!("templates/_notice.html")),
    ("_progress.html", include_str!("templates/_progress.html")),
    ("_actions.html", include_str!("templates/_actions.html")),
    ("campaigns.html", include_str!("templates/campaigns.html")),
    ("campaign.html", include_str!("templates/campaign.html")),
    ("webhooks.html", include_str!("templates/webhooks.html")),
    ("webhook_deliveries.html", include_str!("templates/webhook_deliveries.html")),
    ("webhook_delivery.html", include_str!("templates/webhook_delivery.html")),
    ("channels.html", include_str!("templates/channels.html")),
    ("api_keys.html", include_str!("templates/api_keys.html")),
    ("users.html", include_str!("templates/users.html")),
    ("contact.html", include_str!("templates/contact.html")),
    ("_switch.html", include_str!("templates/_switch.html")),
    ("automations.html", include_str!("templates/automations.html")),
    ("automation.html", include_str!("templates/automation.html")),
    ("sequence.html", include_str!("templates/sequence.html")),
];

fn templates() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        for (name, source) in TEMPLATES {
            // Embedded at build time; the unit test renders every one.
            env.add_template(name, source).expect("an embedded dashboard template does not parse");
        }
        env
    })
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("assets/app.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("assets/app.js"),
    )
}

/// The value of cookie `name`, if the request sent it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `len` random bytes, hex-encoded; `None` when the system has no randomness.
pub(crate) fn random_hex(len: usize) -> Option<String> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A fresh CSRF token, 32 random bytes.
fn random_token() -> Option<String> {
    random_hex(32)
}

/// Equal without an early exit (the CSRF comparison).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Per-request page state: language, CSRF token and the cookies to set.
#[derive(Debug)]
struct Ctx {
    lang: Lang,
    csrf: String,
    set_cookies: Vec<String>,
    secure: bool,
}

#[derive(Debug, Default, Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

impl Ctx {
    fn new(state: &AppState, headers: &HeaderMap, asked: Option<&str>) -> Self {
        let secure = state.settings().secure_cookies;
        let mut set_cookies = Vec::new();
        let asked = asked.and_then(Lang::parse);
        let lang = asked.or_else(|| cookie(headers, LANG_COOKIE).and_then(Lang::parse)).unwrap_or_else(|| {
            Lang::from_accept_language(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or(""))
        });
        if let Some(l) = asked {
            set_cookies.push(cookie_line(LANG_COOKIE, l.tag(), "Lax", Some(365 * 24 * 3600), secure));
        }
        let existing =
            cookie(headers, CSRF_COOKIE).filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()));
        let csrf = match existing {
            Some(v) => v.to_owned(),
            None => {
                let fresh = random_token().unwrap_or_default();
                set_cookies.push(cookie_line(CSRF_COOKIE, &fresh, "Strict", None, secure));
                fresh
            }
        };
        Self { lang, csrf, set_cookies, secure }
    }

    /// Whether a submitted form's `csrf` field matches the cookie.
    fn csrf_ok(&self, headers: &HeaderMap, submitted: Option<&str>) -> bool {
        match (cookie(headers, CSRF_COOKIE), submitted) {
            (Some(c), Some(s)) => !c.is_empty() && same(c, s),
            _ => false,
        }
    }

    /// Renders `template` with the common variables plus `extra`.
    fn render(self, status: StatusCode, template: &str, user: Option<&User>, page: &str, extra: Value) -> Response {
        let mut context = json!({
            "lang": self.lang.tag(),
            "t": self.lang.strings(),
            "csrf": self.csrf,
            "user": user.map(|u| if u.name.trim().is_empty() { u.email.as_str().to_owned() } else { u.name.clone() }),
            "page": page,
            "billing_nav": cfg!(feature = "stripe"),
            "has_webhooks": cfg!(feature = "webhooks"),
        });
        if let (Some(base), Value::Object(extra)) = (context.as_object_mut(), extra) {
            base.extend(extra);
        }
        let html = templates().get_template(template).and_then(|t| t.render(minijinja::value::Serde(&context)));
        let response = match html {
            Ok(html) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
            Err(e) => {
                tracing::error!(error = %e, template, "dashboard template failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
            }
        };
        self.finish(response)
    }

    fn error(self, status: StatusCode, heading_key: &str, message_key: &str, user: Option<&User>) -> Response {
        let strings = self.lang.strings();
        let extra = json!({ "heading": strings.get(heading_key), "message": strings.get(message_key) });
        self.render(status, "error.html", user, "error", extra)
    }

    /// Adds the cookies this request decided to set.
    fn finish(self, mut response: Response) -> Response {
        for c in self.set_cookies {
            if let Ok(v) = HeaderValue::from_str(&c) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// One `Set-Cookie` value, path `/dashboard`, always `HttpOnly`.
fn cookie_line(name: &str, value: &str, same_site: &str, max_age: Option<i64>, secure: bool) -> String {
    let mut line = format!("{name}={value}; Path=/dashboard; HttpOnly; SameSite={same_site}");
    if let Some(age) = max_age {
        line.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        line.push_str("; Secure");
    }
    line
}

/// The signed-in user of a request.
#[derive(Debug)]
struct Viewer {
    account: AccountId,
    session: SessionId,
    user: User,
}

async fn viewer(state: &AppState, headers: &HeaderMap) -> Option<Viewer> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let session = state.crm().authenticate_session(token).await.ok()?;
    let user = state.crm().get_user(session.account_id, session.user_id).await.ok()?;
    Some(Viewer { account: session.account_id, session: session.id, user })
}

fn to_login() -> Response {
    Redirect::to("/dashboard/login").into_response()
}

async fn login_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    let ctx = Ctx::new(&state, &headers, q.lang.as_deref());
    if viewer(&state, &headers).await.is_some() {
        return ctx.finish(Redirect::to("/dashboard").into_response());
    }
    ctx.render(StatusCode::OK, "login.html", None, "login", json!({}))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

async fn login(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let mut ctx = Ctx::new(&state, &headers, None);
    if !ctx.csrf_ok(&headers, form.csrf.as_deref()) {
        return ctx.error(StatusCode::FORBIDDEN, "forbidden_title", "csrf_failed", None);
    }
    let email = form.email.trim().to_owned();
    let user = match crate::auth::check_login(&state, email.clone(), form.password).await {
        Ok(u) => u,
        Err(e) => {
            let status = e.status();
            let key = if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
                "login_throttled"
            } else {
                "login_failed"
            };
            let message = ctx.lang.strings().get(key).copied();
            let status = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
                StatusCode::UNAUTHORIZED
            } else {
                status
            };
            return ctx.render(status, "login.html", None, "login", json!({ "error": message, "email": email }));
        }
    };
    let ttl = Duration::from_std(state.settings().session_ttl).unwrap_or(Duration::hours(12));
    let expires_at = state.crm().clock().now() + ttl;
    let token = match state.crm().start_session(&user, expires_at).await {
        Ok((_, token)) => token,
        Err(e) => {
            tracing::error!(error = %e, "dashboard login: the session could not be stored");
            return ctx.error(StatusCode::SERVICE_UNAVAILABLE, "forbidden_title", "login_throttled", None);
        }
    };
    // A new CSRF token with the new session (no token planted before login survives it).
    if let Some(fresh) = random_token() {
        ctx.set_cookies.push(cookie_line(CSRF_COOKIE, &fresh, "Strict", None, ctx.secure));
    }
    let max_age = ttl.num_seconds();
    ctx.set_cookies.push(cookie_line(SESSION_COOKIE, token.expose(), "Lax", Some(max_age), ctx.secure));
    ctx.finish(Redirect::to("/dashboard").into_response())
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    let mut ctx = Ctx::new(&state, &headers, None);
    if !ctx.csrf_ok(&headers, form.csrf.as_deref()) {
        return ctx.error(StatusCode::FORBIDDEN, "forbidden_title", "csrf_failed", None);
    }
    if let Some(v) = viewer(&state, &headers).await
        && let Err(e) = state.crm().end_session(v.account, v.user.id, v.session).await
    {
        tracing::warn!(error = %e, "dashboard logout: the session could not be ended");
    }
    ctx.set_cookies.push(cookie_line(SESSION_COOKIE, "", "Lax", Some(0), ctx.secure));
    ctx.finish(Redirect::to("/dashboard/login").into_response())
}

#[derive(Debug, Deserialize)]
struct OverviewQuery {
    lang: Option<String>,
    days: Option<u32>,
}

fn percent(v: Option<f64>, none: &str) -> String {
    v.map_or_else(|| none.to_owned(), |v| format!("{:.1}%", v * 100.0))
}

/// `(text, class)` of a trend; `lower_is_better` flips the colour.
fn trend_text(t: Option<f64>, lower_is_better: bool) -> (String, &'static str) {
    match t {
        None => ("—".to_owned(), "flat"),
        Some(v) if v.abs() < 0.0005 => ("= 0%".to_owned(), "flat"),
        Some(v) => {
            let good = (v > 0.0) != lower_is_better;
            let arrow = if v > 0.0 { "▲" } else { "▼" };
            (format!("{arrow} {:.0}%", v.abs() * 100.0), if good { "up" } else { "down" })
        }
    }
}

async fn overview_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<OverviewQuery>) -> Response {
    let ctx = Ctx::new(&state, &headers, q.lang.as_deref());
    let Some(viewer) = viewer(&state, &headers).await else { return ctx.finish(to_login()) };
    let days = if q.days == Some(30) { 30 } else { 7 };
    let now = state.crm().clock().now();
    let (Ok(period), Ok(day)) = (Period::ending(now, Duration::days(days)), Period::ending(now, Duration::hours(24)))
    else {
        return ctx.finish(StatusCode::BAD_REQUEST.into_response());
    };
    let since = period.previous().start.min(day.previous().start);
    let facts = match overview::gather(state.crm(), viewer.account, since).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "dashboard overview: the data could not be read");
            return ctx.error(StatusCode::SERVICE_UNAVAILABLE, "nav_overview", "no_data", Some(&viewer.user));
        }
    };
    let strings = ctx.lang.strings();
    let none = strings["no_data"];
    // Each metric over its window and the window before it.
    let both = |f: &dyn Fn(&Period) -> Option<f64>, window: &Period| (f(window), f(&window.previous()));
    let count = |n: usize| Some(n as f64);
    let active = both(&|p| count(metrics::active_users(&facts.actions, p)), &period);
    let sent = both(&|p| count(metrics::messages_sent(&facts.messages, p)), &day);
    let conversion = both(&|p| metrics::conversion_rate(&facts.contacts, p), &period);
    let minutes =
        |p: &Period| metrics::average_response_time(&facts.messages, p).map(|d| d.num_milliseconds() as f64 / 60_000.0);
    let response = both(&minutes, &period);
    let bot = both(&|p| metrics::bot_efficiency(&facts.messages, p), &period);
    let whole = |v: Option<f64>| v.map_or_else(|| none.to_owned(), |v| format!("{v:.0}"));
    let rows = [
        ("active_users", whole(active.0), active, false),
        ("messages_sent", whole(sent.0), sent, false),
        ("conversion", percent(conversion.0, none), conversion, false),
        (
            "response_time",
            response.0.map_or_else(|| none.to_owned(), |m| overview::minutes(m, strings["minutes"])),
            response,
            true,
        ),
        ("bot_efficiency", percent(bot.0, none), bot, false),
    ];
    let cards: Vec<Value> = rows
        .into_iter()
        .map(|(key, value, (current, previous), lower_is_better)| {
            let (trend, class) = trend_text(metrics::trend(current, previous), lower_is_better);
            let def = format!("{key}_def");
            json!({
                "key": key, "label": strings.get(key), "value": value, "trend": trend, "trend_class": class,
                "definition": strings.get(def.as_str()),
            })
        })
        .collect();
    let per_day = metrics::messages_per_day(&facts.messages, &period);
    let funnel = metrics::funnel(&facts.contacts);
    let extra = json!({
        "days": days,
        "metrics": cards,
        "per_day": per_day.iter().map(|(d, i, o)| json!({ "day": d.to_string(), "inbound": i, "outbound": o })).collect::<Vec<_>>(),
        "funnel": funnel.iter().map(|(s, n)| json!({ "stage": s.as_str(), "label": stage_label(&strings, *s), "count": n })).collect::<Vec<_>>(),
        "messages_chart": overview::messages_chart(&per_day),
        "funnel_chart": overview::funnel_chart(&funnel),
    });
    ctx.render(StatusCode::OK, "overview.html", Some(&viewer.user), "overview", extra)
}

fn stage_label(strings: &std::collections::BTreeMap<&'static str, &'static str>, stage: LeadStage) -> &'static str {
    let key = format!("stage_{}", stage.as_str());
    strings.get(key.as_str()).copied().unwrap_or("")
}

#[derive(Debug, Deserialize)]
struct ContactsQuery {
    lang: Option<String>,
    #[serde(default)]
    q: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    stage: String,
    min_score: Option<String>,
    after: Option<String>,
}

async fn contacts_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<ContactsQuery>) -> Response {
    let ctx = Ctx::new(&state, &headers, q.lang.as_deref());
    let Some(viewer) = viewer(&state, &headers).await else { return ctx.finish(to_login()) };
    let min_score = q.min_score.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::parse::<u8>);
    let query = (|| {
        Ok::<_, crm_core::Error>(ContactQuery {
            tag: Some(q.tag.trim()).filter(|t| !t.is_empty()).map(Tag::parse).transpose()?,
            lead_stage: Some(q.stage.trim()).filter(|s| !s.is_empty()).map(LeadStage::parse).transpose()?,
            search: ContactSearch::parse(&q.q)?,
            page: PageRequest::new(q.after.as_deref(), PageRequest::DEFAULT_LIMIT)?,
        })
    })();
    let (query, min_score) = match (query, min_score.transpose()) {
        (Ok(query), Ok(min)) => (query, min),
        _ => return ctx.error(StatusCode::BAD_REQUEST, "nav_contacts", "no_contacts", Some(&viewer.user)),
    };
    let page = match state.crm().list_contacts(viewer.account, &query).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "dashboard contacts: the list could not be read");
            return ctx.error(StatusCode::BAD_REQUEST, "nav_contacts", "no_contacts", Some(&viewer.user));
        }
    };
    let strings = ctx.lang.strings();
    let contacts: Vec<Value> = page
        .items
        .iter()
        .filter(|c| min_score.is_none_or(|m| c.lead_score >= m))
        .map(|c| {
            json!({
                "id": c.id.to_string(), "name": c.name, "phone": c.phone.to_string(), "stage": stage_label(&strings, c.lead_stage),
                "score": c.lead_score, "tags": c.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let next = page.next_cursor.map(|cursor| {
        let mut url = url_query(&[("q", &q.q), ("tag", &q.tag), ("stage", &q.stage)]);
        if let Some(m) = min_score {
            url.push_str(&format!("&min_score={m}"));
        }
        format!("/dashboard/contacts?{url}&after={cursor}")
    });
    let stages: Vec<Value> =
        LeadStage::ALL.iter().map(|s| json!({ "stage": s.as_str(), "label": stage_label(&strings, *s) })).collect();
    let extra = json!({
        "contacts": contacts, "q": q.q, "tag": q.tag, "stage": q.stage, "stages": stages, "next": next,
        "min_score": min_score.map(|m| m.to_string()).unwrap_or_default(),
    });
    ctx.render(StatusCode::OK, "contacts.html", Some(&viewer.user), "contacts", extra)
}

/// `k=v&…` with every value percent-encoded.
fn url_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let encoded: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={encoded}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_the_login_page_renders_in_both_languages() {
        let env = templates();
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
        for (lang, button) in [(Lang::PtBr, "Entrar"), (Lang::En, "Log in")] {
            let html = env
                .get_template("login.html")
                .unwrap()
                .render(minijinja::value::Serde(json!({
                    "lang": lang.tag(), "t": lang.strings(), "csrf": "abc", "user": null, "page": "login",
                    "error": "<b>x</b>",
                })))
                .unwrap();
            assert!(html.contains(button), "{html}");
            assert!(html.contains(r#"name="csrf" value="abc""#));
            assert!(html.contains("&lt;b&gt;x") && !html.contains("<b>x"), "values are escaped: {html}");
            assert!(html.contains(&format!(r#"<html lang="{}">"#, lang.tag())));
        }
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; crm_csrf_x=2; crm_csrf=3"));
        assert_eq!(cookie(&headers, "crm_csrf"), Some("3"));
        assert_eq!(cookie(&headers, "b"), None);
    }

    #[test]
    fn cookie_lines_are_http_only_and_secure_when_asked() {
        let line = cookie_line(SESSION_COOKIE, "t", "Lax", Some(60), true);
        assert_eq!(line, "crm_session=t; Path=/dashboard; HttpOnly; SameSite=Lax; Max-Age=60; Secure");
        assert!(!cookie_line(CSRF_COOKIE, "t", "Strict", None, false).contains("Secure"));
    }

    #[test]
    fn trends_read_as_arrows_and_colour_by_what_is_good() {
        assert_eq!(trend_text(Some(0.25), false), ("▲ 25%".to_owned(), "up"));
        assert_eq!(trend_text(Some(0.25), true), ("▲ 25%".to_owned(), "down"));
        assert_eq!(trend_text(None, false).1, "flat");
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        assert_eq!(url_query(&[("q", "a b&c"), ("t", "")]), "q=a%20b%26c&t=");
    }
}
