//! OAuth 2.0 connections and the Salesforce sync:
//!
//! - `GET /auth/{provider}/start` (authenticated, admins): a one-time
//!   `state` (10 minutes, bound to the caller's API key or session and
//!   account) and a PKCE pair; answers with the provider's authorization URL.
//! - `GET /auth/{provider}/callback` (public: the provider redirects the
//!   browser here): checks and consumes the state, exchanges the code.
//! - `GET /api/v1/oauth`, `DELETE /api/v1/oauth/{provider}`: connections
//!   (status, scopes, expiry, last error — never tokens); disconnect revokes.
//! - `POST /api/v1/contacts/{id}/salesforce` (schedule a push),
//!   `GET /api/v1/contacts/{id}/salesforce` (the mapping),
//!   `POST /api/v1/salesforce/pull` (schedule a pull).
//!
//! 503 when no provider is configured (or without the `oauth` feature).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::ports::oauth::{ExternalLink, GrantView, OAuthProvider};
use crm_core::{ContactId, JobId, Role};

use crate::auth::{Credential, Principal};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// `/auth/{provider}/start` (authenticated).
pub(crate) fn start_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start))
}

/// `/auth/{provider}/callback` (public).
pub(crate) fn callback_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(callback))
}

/// `/api/v1/oauth*` and the Salesforce sync (authenticated).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connections))
        .routes(routes!(disconnect))
        .routes(routes!(push_contact, contact_link))
        .routes(routes!(pull))
}

#[cfg(feature = "oauth")]
fn services(state: &AppState) -> ApiResult<&crate::oauth::OAuthServices> {
    state.oauth().ok_or_else(not_configured)
}

fn not_configured() -> ApiError {
    ApiError::from(crm_core::Error::Config {
        message: "no OAuth provider is configured: set GOOGLE_OAUTH_* or SALESFORCE_*".into(),
    })
}

fn provider(name: &str) -> ApiResult<OAuthProvider> {
    OAuthProvider::parse(name).map_err(|_| ApiError::not_found("no such OAuth provider (google, salesforce)"))
}

/// Who asked, as stored with the state.
pub(crate) fn principal_tag(p: &Principal) -> String {
    match p.credential {
        Credential::ApiKey(id) => format!("key:{id}"),
        Credential::Session { id, .. } => format!("session:{id}"),
    }
}

/// Where to send the user.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuthorizationStart {
    /// The provider's authorization URL (with `state` and the S256 `code_challenge`).
    authorization_url: String,
    /// When the state expires.
    expires_at: DateTime<Utc>,
}

/// Start connecting the account to a provider (admins).
#[utoipa::path(get, path = "/auth/{provider}/start", tag = "oauth",
    params(("provider" = String, Path, description = "`google` or `salesforce`", pattern = "^(google|salesforce)$")),
    responses((status = 200, body = AuthorizationStart), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn start(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<(HeaderMap, Json<AuthorizationStart>)> {
    principal.require(Role::Admin)?;
    let p = provider(&name)?;
    #[cfg(feature = "oauth")]
    {
        let oauth = services(&state)?;
        let url = oauth.connections.start(principal.account_id, &principal_tag(&principal), p).await?;
        let expires_at = state.crm().clock().now() + crm_core::oauth::STATE_TTL;
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
        Ok((headers, Json(AuthorizationStart { authorization_url: url, expires_at })))
    }
    #[cfg(not(feature = "oauth"))]
    {
        let _ = (state, p);
        Err(not_configured())
    }
}

/// What the provider sends back.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
// Only state, code and error are read; the rest are accepted because the
// providers add them to the redirect.
#[allow(dead_code)]
pub(crate) struct CallbackParams {
    /// The one-time state from the start.
    #[param(max_length = 512)]
    state: Option<String>,
    /// The authorization code.
    #[param(max_length = 2048)]
    code: Option<String>,
    /// The provider's error (`access_denied`, …).
    #[param(max_length = 200)]
    error: Option<String>,
    /// The provider's error description.
    #[param(max_length = 1000)]
    error_description: Option<String>,
    /// Google echoes the granted scopes.
    #[param(max_length = 2048)]
    scope: Option<String>,
    /// Salesforce may add these.
    #[param(max_length = 2048)]
    sfdc_community_url: Option<String>,
    /// Salesforce may add these.
    #[param(max_length = 200)]
    sfdc_community_id: Option<String>,
    /// Google may add these.
    #[param(max_length = 200)]
    authuser: Option<String>,
    /// Google may add these.
    #[param(max_length = 200)]
    prompt: Option<String>,
    /// Google may add these.
    #[param(max_length = 200)]
    hd: Option<String>,
    /// Google may add these.
    #[param(max_length = 2048)]
    iss: Option<String>,
}

/// The provider's redirect: completes the connection (public; the state
/// is the credential). 400 for a missing, unknown, used, expired or
/// foreign state and for a code the provider refuses.
#[utoipa::path(get, path = "/auth/{provider}/callback", tag = "oauth",
    params(("provider" = String, Path, description = "`google` or `salesforce`", pattern = "^(google|salesforce)$"), CallbackParams),
    responses((status = 200, body = GrantView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn callback(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<CallbackParams>,
) -> ApiResult<(HeaderMap, Json<GrantView>)> {
    let p = provider(&name)?;
    #[cfg(feature = "oauth")]
    {
        let oauth = services(&state)?;
        // A denial still consumes the state, so it cannot be used later.
        let code = if q.error.is_some() { None } else { q.code.as_deref() };
        let done = oauth.connections.complete(p, q.state.as_deref(), code, None).await;
        let grant = done.map_err(|e| match (e, &q.error) {
            (crm_core::Error::Validation { field, .. }, Some(err)) if field == "code" => {
                ApiError::bad_request(format!("the provider did not authorize: {}", clip(err)))
            }
            (crm_core::Error::Validation { field, reason }, _) => {
                ApiError::bad_request(format!("invalid {field}: {reason}"))
            }
            (e, _) => ApiError::from(e),
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
        Ok((headers, Json(grant)))
    }
    #[cfg(not(feature = "oauth"))]
    {
        let _ = (state, p, q);
        Err(not_configured())
    }
}

fn clip(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect()
}

/// The account's connections.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Connections {
    /// Providers this server can connect to.
    configured: Vec<OAuthProvider>,
    /// The account's connections (never their tokens).
    connections: Vec<GrantView>,
}

/// The account's OAuth connections: status, scopes, expiry, last error.
#[utoipa::path(get, path = "/oauth", tag = "oauth",
    responses((status = 200, body = Connections), (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn list_connections(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Connections>> {
    #[cfg(feature = "oauth")]
    {
        let oauth = services(&state)?;
        let connections = oauth.connections.list(principal.account_id).await?;
        Ok(Json(Connections { configured: oauth.connections.providers(), connections }))
    }
    #[cfg(not(feature = "oauth"))]
    {
        let _ = (state, principal);
        Err(not_configured())
    }
}

/// Disconnect: revoke the grant at the provider and delete it (admins).
#[utoipa::path(delete, path = "/oauth/{provider}", tag = "oauth",
    params(("provider" = String, Path, description = "`google` or `salesforce`", pattern = "^(google|salesforce)$")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn disconnect(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    principal.require(Role::Admin)?;
    let p = provider(&name)?;
    #[cfg(feature = "oauth")]
    {
        services(&state)?.connections.disconnect(principal.account_id, p).await?;
        Ok(StatusCode::NO_CONTENT)
    }
    #[cfg(not(feature = "oauth"))]
    {
        let _ = (state, p);
        Err(not_configured())
    }
}

/// A sync job scheduled.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SyncScheduled {
    /// The job (see `/api/v1/jobs`); `null` when a push of this contact was already queued.
    job_id: Option<JobId>,
}

#[cfg(feature = "oauth")]
async fn schedule(state: &AppState, job: crm_core::Job) -> ApiResult<SyncScheduled> {
    let id = job.id;
    match state.crm().store().schedule_job(&job).await {
        Ok(()) => Ok(SyncScheduled { job_id: Some(id) }),
        Err(crm_core::Error::Conflict { .. }) => Ok(SyncScheduled { job_id: None }),
        Err(e) => Err(e.into()),
    }
}

#[cfg(feature = "oauth")]
fn salesforce(state: &AppState) -> ApiResult<()> {
    match services(state)?.salesforce {
        Some(_) => Ok(()),
        None => Err(ApiError::from(crm_core::Error::Config {
            message: "Salesforce is not configured: set SALESFORCE_*".into(),
        })),
    }
}

/// Push the contact to Salesforce (a durable job; agents and up).
#[utoipa::path(post, path = "/contacts/{id}/salesforce", tag = "oauth", params(("id" = ContactId, Path)),
    responses((status = 202, body = SyncScheduled), (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn push_contact(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ContactId>,
) -> ApiResult<(StatusCode, Json<SyncScheduled>)> {
    principal.require(Role::Agent)?;
    #[cfg(feature = "oauth")]
    {
        salesforce(&state)?;
        let contact = state.crm().get_contact(principal.account_id, id).await?;
        let now = state.crm().clock().now();
        let job = crm_core::workers::push_job(principal.account_id, contact.id, now)?;
        Ok((StatusCode::ACCEPTED, Json(schedule(&state, job).await?)))
    }
    #[cfg(not(feature = "oauth"))]
    {
        let _ = (state, id);
        Err(not_configured())
    }
}

/// The contact's Salesforce record (404 when it was never pushed).
#[utoipa::path(get, path = "/contacts/{id}/salesforce", tag = "oauth", params(("id" = ContactId, Path)),
    responses((status = 200, body = ExternalLink), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn contact_link(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ContactId>,
) -> ApiResult<Json<ExternalLink>> {
    let store = state.crm().store();
    let link = store.get_external_link(principal.account_id, id, "salesforce").await?;
    Ok(Json(link.ok_or_else(|| ApiError::not_found("the contact has no Salesforce record"))?))
}

/// Which changes to pull.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PullRequest {
    /// Records changed after this time.
    since: DateTime<Utc>,
}

/// Pull Salesforce records changed since a time onto linked contacts (a durable job; admins).
#[utoipa::path(post, path = "/salesforce/pull", tag = "oauth", request_body = PullRequest,
    responses((status = 202, body = SyncScheduled), (status = 422, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn pull(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<PullRequest>,
) -> ApiResult<(StatusCode, Json<SyncScheduled>)> {
    principal.require(Role::Admin)?;
    #[cfg(feature = "oauth")]
    {
        salesforce(&state)?;
        let now = state.crm().clock().now();
        let job = crm_core::workers::pull_job(principal.account_id, body.since, now)?;
        Ok((StatusCode::ACCEPTED, Json(schedule(&state, job).await?)))
    }
    #[cfg(not(feature = "oauth"))]
    {
        let _ = (state, body);
        Err(not_configured())
    }
}
