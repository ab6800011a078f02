//! # crm-http
//!
//! The crm HTTP server: a JSON REST API under `/api/v1` (contacts, messages,
//! templates, events, users and API keys), bearer API keys scoped to one
//! account, per-key and per-IP rate limits with `X-RateLimit-*` headers,
//! `/health` and `/ready`, an OpenAPI 3.1 document at `/openapi.json` with a
//! docs page at `/docs`, Prometheus metrics at `/metrics`, and errors as
//! `application/problem+json`.
//!
//! Embed it with [`router`] over your own [`AppState`], or run it with
//! [`Server::build`]:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = crm_http::Config::load(None, |k| std::env::var(k).ok())?;
//! let server = crm_http::Server::build(config).await?;
//! println!("listening on port {}", server.port());
//! server.run_until_stopped().await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

#[cfg(feature = "ai")]
mod ai;
#[cfg(feature = "ai")]
pub mod ai_config;
mod auth;
mod automation;
#[cfg(feature = "stripe")]
mod billing;
#[cfg(feature = "stripe")]
pub mod billing_config;
pub mod campaign;
pub mod config;
mod connectors;
pub mod dashboard;
mod error;
mod extract;
mod idempotency;
pub mod import;
pub mod media;
pub mod media_config;
pub mod metrics;
pub mod n8n;
pub mod oauth;
mod request_id;
mod routes;
mod sequences;
mod server;
mod state;
#[cfg(feature = "webhooks")]
pub mod webhook_config;
#[cfg(feature = "whatsapp-web")]
mod whatsapp_web;
#[cfg(feature = "whatsapp-web")]
pub use whatsapp_web::{PairingProgress, pair_channel};

pub use auth::{Credential, LOGIN_TRIES_PER_HOUR, LOGIN_TRIES_PER_MINUTE, Principal};
pub use config::{Config, LogFormat, RateLimitConfig};
pub use error::{ApiError, Problem, error_chain};
pub use server::{
    BOOTSTRAP_ACCOUNT, BOOTSTRAP_OWNER_EMAIL, Bootstrap, Parts, Server, ServerBuilder, init_tracing, open_store,
    run_worker,
};
pub use state::{AppState, Settings};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::time::Instant;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(title = "crm", description = "WhatsApp-first customer engagement API. Authenticate with `Authorization: Bearer <api key>`."),
    modifiers(&BearerAuth),
    tags(
        (name = "contacts", description = "People the business talks to"),
        (name = "messages", description = "Sending and reading messages"),
        (name = "templates", description = "Reusable message bodies"),
        (name = "channels", description = "The account's connections to messaging providers"),
        (name = "campaigns", description = "A template sent to an audience through one channel, at the channel's pace"),
        (name = "automations", description = "Automation rules (versions, runs, dry run) and the lead scoring model"),
        (name = "sequences", description = "Follow-up sequences: timed steps per enrolled contact, stopped by a reply, a stage change or an opt-out"),
        (name = "oauth", description = "OAuth 2.0 connections (Google, Salesforce: PKCE, one-time state, refresh, revoke) and the Salesforce contact sync"),
        (name = "groups", description = "A channel's WhatsApp groups: create, rename, describe, participants and admins, leave, the group thread (WhatsApp Web; 409 `unsupported` on the Cloud API)"),
        (name = "connections", description = "The account's connections to e-mail (SendGrid, SMTP), Slack and GA4: set, read, test, delete (admins)"),
        (name = "n8n", description = "The configured n8n instance's workflows: list, read, activate, deactivate, export (owners)"),
        (name = "workers", description = "Dead letters and durable jobs of the background workers"),
        (name = "events", description = "The event log"),
        (name = "media", description = "Media files: uploads, inbound files, signed URLs"),
        (name = "admin", description = "Account, users and API keys"),
        (name = "auth", description = "Dashboard login"),
        (name = "system", description = "Health, readiness, metrics"),
        (name = "webhooks", description = "Providers' inbound webhooks (signed by the provider, not by an API key)"),
        (name = "ai", description = "The assistant: reply drafts (streamed with `?stream=true`), sentiment, lead signals, summaries, usage, auto-reply"),
        (name = "billing", description = "The account's subscription: Stripe Checkout (card and Pix), the customer portal, plan limits"),
        (name = "outbound-webhooks", description = "Endpoints that receive the account's events, signed per Standard Webhooks; deliveries, attempts, event types"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_router().split_for_parts().1;
    finish_document(&mut doc);
    doc
}

/// What runs on the finished document (after the routes are merged in).
fn finish_document(doc: &mut utoipa::openapi::OpenApi) {
    add_id_schemas(doc);
    ProblemResponses.modify(doc);
    ResourceLinks.modify(doc);
    #[cfg(feature = "webhooks")]
    routes::webhooks::add_payload_schemas(doc);
    #[cfg(feature = "stripe")]
    routes::billing::document_guard(doc);
}

/// The identifiers path parameters refer to by name (`"id" = SequenceId`),
/// as components, so every `$ref` resolves.
fn add_id_schemas(doc: &mut utoipa::openapi::OpenApi) {
    fn add<T: utoipa::ToSchema>(c: &mut utoipa::openapi::Components) {
        c.schemas.entry(T::name().into_owned()).or_insert_with(T::schema);
    }
    let c = doc.components.get_or_insert_with(Default::default);
    add::<crm_core::SequenceId>(c);
    add::<crm_core::EnrolmentId>(c);
}

/// OpenAPI links from each create operation's 201 to the operations that take
/// the new resource's id, so clients (and schemathesis' stateful phase) can
/// follow `$response.body#/id` instead of guessing ids.
struct ResourceLinks;

impl Modify for ResourceLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::link::Link;
        let links: [(&str, &[&str]); 5] = [
            (
                "/api/v1/contacts",
                &[
                    "get_contact",
                    "update_contact",
                    "delete_contact",
                    "add_tags",
                    "remove_tags",
                    "contact_thread",
                    "contact_windows",
                ],
            ),
            ("/api/v1/templates", &["get_template", "replace_template", "delete_template", "render_template"]),
            ("/api/v1/channels", &["get_channel", "update_channel", "delete_channel"]),
            ("/api/v1/messages", &["get_message"]),
            (
                "/api/v1/sequences",
                &["get_sequence", "replace_sequence", "delete_sequence", "enrol_contacts", "list_enrolments"],
            ),
        ];
        for (path, targets) in links {
            let Some(op) = openapi.paths.paths.get_mut(path).and_then(|i| i.post.as_mut()) else { continue };
            let code = if op.responses.responses.contains_key("201") { "201" } else { "202" };
            let Some(RefOr::T(created)) = op.responses.responses.get_mut(code) else { continue };
            for target in targets {
                let link = Link::builder().operation_id(*target).parameter("id", "$response.body#/id").build();
                created.links.insert(target.to_string(), RefOr::T(link));
            }
        }
    }
}

/// Documents the problem responses every operation can give beyond its own
/// (400/422 for bad input, 401/403 and 429 through the auth and rate-limit
/// layers, 413/415 for bodies, 404 for ids, 503 when a dependency fails), as
/// `application/problem+json`, and fills in empty response descriptions.
/// Runs on the finished document: `ApiDoc`'s own modifiers run before the
/// routes are merged in.
struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::Ref;
        use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
        const PROBLEM: &str = "application/problem+json";
        let is_problem = |c: &RefOr<utoipa::openapi::Content>| match c {
            RefOr::T(c) => matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem")),
            RefOr::Ref(_) => false,
        };
        let describe = |code: &str| {
            code.parse::<u16>()
                .ok()
                .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
                .and_then(|c| c.canonical_reason())
                .unwrap_or("Response")
                .to_owned()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/api/");
            let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                let mut codes: Vec<u16> = Vec::new();
                if api {
                    codes.extend([400, 422, 429, 503]);
                }
                // Any authenticated operation, under /api or not (`/auth/{provider}/start`).
                if op.security.is_some() {
                    codes.extend([401, 403]);
                }
                if op.request_body.is_some() {
                    codes.extend([413, 415]);
                }
                if path.contains('{') {
                    codes.push(404);
                }
                for code in codes {
                    op.responses.responses.entry(code.to_string()).or_insert_with(|| {
                        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(describe(&code.to_string()))
                                .content(PROBLEM, content)
                                .build(),
                        )
                    });
                }
                for (code, response) in op.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else { continue };
                    if response.description.is_empty() {
                        response.description = describe(code);
                    }
                    if response.content.get("application/json").is_some_and(is_problem)
                        && let Some(content) = response.content.shift_remove("application/json")
                    {
                        response.content.insert(PROBLEM.to_owned(), content);
                    }
                }
            }
        }
    }
}

/// Routes that need a bearer token.
fn authed_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(routes::contacts::router())
        .merge(routes::messages::router())
        .merge(routes::templates::router())
        .merge(routes::campaigns::router())
        .merge(routes::automations::router())
        .merge(routes::sequences::router())
        .merge(routes::n8n::router())
        .merge(routes::oauth::router())
        .merge(routes::connections::router())
        .merge(routes::channels::router())
        .merge(routes::groups::router())
        .merge(routes::workers::router())
        .merge(routes::events::router())
        .merge(routes::admin::router())
        .merge(routes::media::router())
        .merge(provider_account_routes())
}

/// Providers' account routes built into the server (behind API keys).
fn provider_account_routes() -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new();
    #[cfg(feature = "whatsapp-cloud")]
    let routes = routes.merge(routes::whatsapp::account_router());
    #[cfg(feature = "webhooks")]
    let routes = routes.merge(routes::webhooks::router());
    #[cfg(feature = "ai")]
    let routes = routes.merge(routes::ai::router());
    #[cfg(feature = "whatsapp-web")]
    let routes = routes.merge(routes::whatsapp_web::account_router());
    #[cfg(feature = "stripe")]
    let routes = routes.merge(routes::billing::router());
    routes
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", authed_routes().merge(routes::admin::public_router()))
        .merge(routes::oauth::start_router())
        .merge(routes::oauth::callback_router())
        .merge(routes::system::router())
        .merge(routes::media::public_router())
        .merge(provider_routes())
}

/// Providers' inbound webhooks built into the server (outside `/api/v1`
/// authentication: the provider signs them).
fn provider_routes() -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new();
    #[cfg(feature = "whatsapp-cloud")]
    let routes = routes.merge(routes::whatsapp::router());
    #[cfg(feature = "stripe")]
    let routes = routes.merge(routes::billing::webhook_router());
    #[cfg(feature = "sendgrid")]
    let routes = routes.merge(routes::connections::webhook_router());
    routes
}

/// The whole application over `state`: routes, auth, rate limits, problem
/// errors, tracing, request ids, compression, CORS, timeouts and body limits.
pub fn router(state: AppState) -> Router {
    router_with(state, Vec::new())
}

/// `/health`, `/ready` and `/metrics` alone (what a worker process serves).
pub fn system_router(state: AppState) -> Router {
    let (app, _) = OpenApiRouter::new().merge(routes::system::router()).split_for_parts();
    layered(app, state)
}

/// [`router`] plus `extra` routes (an adapter's inbound webhooks), merged
/// at the top level outside `/api/v1` authentication.
pub fn router_with(state: AppState, extra: Vec<Router<AppState>>) -> Router {
    let authed = authed_routes();
    // The plan guard runs after authentication (layers run outside in: the
    // one added last runs first).
    #[cfg(feature = "stripe")]
    let authed = authed.layer(middleware::from_fn_with_state(state.clone(), routes::billing::plan_guard));
    let authed = authed.layer(middleware::from_fn_with_state(state.clone(), auth::authenticate));
    let public = routes::admin::public_router().layer(middleware::from_fn_with_state(state.clone(), auth::limit_by_ip));
    let oauth_start =
        routes::oauth::start_router().layer(middleware::from_fn_with_state(state.clone(), auth::authenticate));
    let oauth_callback =
        routes::oauth::callback_router().layer(middleware::from_fn_with_state(state.clone(), auth::limit_by_ip));
    let (app, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", authed.merge(public))
        .merge(oauth_start)
        .merge(oauth_callback)
        .merge(routes::system::router())
        .merge(routes::media::public_router())
        .merge(provider_routes())
        .split_for_parts();
    let mut doc = doc;
    finish_document(&mut doc);
    let docs = utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", doc);
    let mut app = app.merge(docs).merge(dashboard::router());
    for r in extra {
        app = app.merge(r);
    }
    layered(app, state)
}

/// The layers every route gets, then the state.
fn layered(app: Router<AppState>, state: AppState) -> Router {
    let settings = state.settings().clone();

    let cors = if settings.cors_origins.iter().any(|o| o == "*") {
        CorsLayer::new().allow_origin(AllowOrigin::any())
    } else {
        let origins: Vec<HeaderValue> = settings.cors_origins.iter().filter_map(|o| o.parse().ok()).collect();
        CorsLayer::new().allow_origin(origins)
    }
    .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
    .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
    .expose_headers([
        REQUEST_ID.clone(),
        HeaderName::from_static("x-ratelimit-limit"),
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderName::from_static("x-ratelimit-reset"),
        header::RETRY_AFTER,
    ]);

    app.fallback(|| async { ApiError::not_found("no route matches this path") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::extract::DefaultBodyLimit::max(settings.body_limit_bytes))
        // Inside the problem and metrics layers, so a timed-out request gets a
        // problem body and is counted.
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, settings.request_timeout))
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .layer(CompressionLayer::new())
        .layer(cors)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let route = req.extensions().get::<MatchedPath>().map_or("", MatchedPath::as_str);
                    let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), route, request_id = id)
                })
                .on_response(|res: &Response, latency: std::time::Duration, _span: &tracing::Span| {
                    tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_secs_f64() * 1000.0, "response");
                }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), request_id::RequestIds::new()))
        .with_state(state)
}

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    // Both are cheap clones (the method is an enum, the route an Arc<str>).
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let res = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    state.metrics().observe_request(method.as_str(), route, res.status().as_u16(), start.elapsed());
    res
}

/// Gives error responses produced below the handlers (timeouts, limits) a
/// problem body, so every 4xx/5xx answers `application/problem+json`.
async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if (status.is_client_error() || status.is_server_error()) && !res.headers().contains_key(header::CONTENT_TYPE) {
        let (parts, _) = res.into_parts();
        let mut fresh = match status.as_u16() {
            413 => ApiError::payload_too_large("the request body exceeds the configured limit"),
            405 => ApiError::method_not_allowed(),
            503 => ApiError::new(status, "unavailable", "Service unavailable", "the request took too long"),
            _ => ApiError::new(status, "error", "Error", status.canonical_reason().unwrap_or("error")),
        }
        .into_response();
        for (k, v) in parts.headers.iter() {
            if k != header::CONTENT_LENGTH {
                fresh.headers_mut().entry(k).or_insert(v.clone());
            }
        }
        return fresh;
    }
    res
}
