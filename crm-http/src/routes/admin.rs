//! Account, users, API keys and login.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::domain::account::AccountPatch;
use crm_core::{Account, ApiKey, ApiKeyId, Role, SessionId, User, UserId};

use crate::auth::{Credential, Principal};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_account, update_account))
        .routes(routes!(list_users, create_user))
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(revoke_api_key))
        .routes(routes!(logout))
        .routes(routes!(list_sessions))
        .routes(routes!(end_session))
}

pub(crate) fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login))
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    id: UserId,
    email: String,
    name: String,
    role: Role,
    created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self { id: u.id, email: u.email.to_string(), name: u.name, role: u.role, created_at: u.created_at }
    }
}

/// An API key as the API shows it (never its hash).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiKeyView {
    id: ApiKeyId,
    name: String,
    /// Public prefix: the characters after `crm_` in the key.
    prefix: String,
    role: Role,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            role: k.role,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    #[schema(format = Email, min_length = 3, max_length = 254)]
    email: String,
    #[schema(min_length = 1)]
    name: String,
    role: Role,
    /// 8–128 characters; stored as an argon2id hash.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
}

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewApiKey {
    /// A label.
    #[schema(min_length = 1)]
    name: String,
    /// Defaults to `agent`; cannot exceed the caller's role.
    #[serde(default)]
    role: Option<Role>,
    /// Optional expiry (RFC 3339).
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// A created key: `token` is shown this once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedApiKey {
    key: ApiKeyView,
    /// The secret to send as `Authorization: Bearer <token>`.
    token: String,
}

/// Login credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    email: String,
    password: String,
}

/// A short-lived bearer token for the dashboard.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Session {
    /// The session (see `GET /auth/sessions`).
    id: SessionId,
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    expires_at: DateTime<Utc>,
    user: UserView,
}

/// A login session as its user sees it (never its token or hash).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionView {
    id: SessionId,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// Whether this request was made with it.
    current: bool,
}

/// The session and user behind a request made with a login session;
/// 403 for API keys (they have no sessions).
fn session_of(principal: &Principal) -> ApiResult<(SessionId, UserId)> {
    match principal.credential {
        Credential::Session { id, user_id } => Ok((id, user_id)),
        Credential::ApiKey(_) => Err(ApiError::forbidden("this needs a login session token, not an API key")),
    }
}

/// The caller's account.
#[utoipa::path(get, path = "/account", tag = "admin",
    responses((status = 200, body = Account), (status = 401, body = Problem)), security(("api_key" = [])))]
async fn get_account(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Account>> {
    Ok(Json(state.crm().store().get_account(principal.account_id).await?))
}

/// Change the caller's account (admins only): its name and/or its IANA time
/// zone (`null` clears it: UTC). Business-hours conditions and sequence send
/// windows with neither their own `time_zone` nor a UTC offset are read in
/// this zone. Emits `account.updated` when something changed.
#[utoipa::path(patch, path = "/account", tag = "admin", request_body = AccountPatch,
    responses((status = 200, body = Account), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem),
        (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn update_account(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<AccountPatch>,
) -> ApiResult<Json<Account>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().update_account(principal.account_id, &body).await?))
}

/// Users of the account (admins only).
#[utoipa::path(get, path = "/users", tag = "admin",
    responses((status = 200, body = Vec<UserView>), (status = 403, body = Problem)), security(("api_key" = [])))]
async fn list_users(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Vec<UserView>>> {
    principal.require(Role::Admin)?;
    let users = state.crm().store().list_users(principal.account_id).await?;
    Ok(Json(users.into_iter().map(UserView::from).collect()))
}

/// Create a user (admins only; cannot grant more than the caller has).
#[utoipa::path(post, path = "/users", tag = "admin", request_body = NewUser,
    responses((status = 201, body = UserView), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)), security(("api_key" = [])))]
async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    principal.require(Role::Admin)?;
    principal.require(body.role)?;
    let crm = state.crm().clone();
    let account = principal.account_id;
    // argon2 takes tens of milliseconds of CPU: keep it off the async workers.
    let user = tokio::task::spawn_blocking(move || {
        tokio::runtime::Handle::current()
            .block_on(async move { crm.create_user(account, &body.email, &body.name, body.role, &body.password).await })
    })
    .await
    .map_err(|_| crm_core::Error::Config { message: "the password hashing task failed".into() })??;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// API keys of the account (admins only).
#[utoipa::path(get, path = "/api-keys", tag = "admin",
    responses((status = 200, body = Vec<ApiKeyView>), (status = 403, body = Problem)), security(("api_key" = [])))]
async fn list_api_keys(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Vec<ApiKeyView>>> {
    principal.require(Role::Admin)?;
    let keys = state.crm().store().list_api_keys(principal.account_id).await?;
    Ok(Json(keys.into_iter().map(ApiKeyView::from).collect()))
}

/// Create an API key (admins only). The token is in this response only.
#[utoipa::path(post, path = "/api-keys", tag = "admin", request_body = NewApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn create_api_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    principal.require(Role::Admin)?;
    let role = body.role.unwrap_or(Role::Agent);
    principal.require(role)?;
    // A short-lived login session cannot mint a key that outlives policy.
    let expires_at = match principal.credential {
        Credential::Session { .. } => Some(state.crm().session_key_expiry(body.expires_at)?),
        Credential::ApiKey(_) => body.expires_at,
    };
    let (key, token) = state.crm().create_api_key(principal.account_id, &body.name, role, expires_at).await?;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { key: key.into(), token: token.expose().to_owned() })))
}

/// Revoke an API key (admins only); revoking twice is harmless.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "admin", params(("id" = ApiKeyId, Path)),
    responses((status = 200, body = ApiKeyView), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn revoke_api_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ApiKeyId>,
) -> ApiResult<Json<ApiKeyView>> {
    principal.require(Role::Admin)?;
    // Nobody revokes a key more powerful than their own (checked by the store's one statement).
    Ok(Json(state.crm().revoke_api_key_up_to(principal.account_id, id, principal.role).await?.into()))
}

/// Exchange e-mail and password for a login session: a short-lived bearer
/// token (`crs_…`, stored hashed, expiring after the configured session
/// lifetime) that `POST /auth/logout` ends.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = Session), (status = 401, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
async fn login(State(state): State<AppState>, ApiJson(body): ApiJson<Login>) -> ApiResult<Json<Session>> {
    let user = crate::auth::check_login(&state, body.email, body.password).await?;
    let ttl = chrono::Duration::from_std(state.settings().session_ttl).unwrap_or(chrono::Duration::hours(12));
    let expires_at = state.crm().clock().now() + ttl;
    let (session, token) = state.crm().start_session(&user, expires_at).await?;
    Ok(Json(Session { id: session.id, token: token.expose().to_owned(), expires_at, user: user.into() }))
}

/// End the login session this request is made with.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem)), security(("api_key" = [])))]
async fn logout(State(state): State<AppState>, principal: Principal) -> ApiResult<StatusCode> {
    let (id, user) = session_of(&principal)?;
    state.crm().end_session(principal.account_id, user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's live login sessions, newest first.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth",
    responses((status = 200, body = Vec<SessionView>), (status = 403, body = Problem)), security(("api_key" = [])))]
async fn list_sessions(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Vec<SessionView>>> {
    let (current, user) = session_of(&principal)?;
    let sessions = state.crm().list_sessions(principal.account_id, user).await?;
    let views = sessions
        .into_iter()
        .map(|s| SessionView { id: s.id, created_at: s.created_at, expires_at: s.expires_at, current: s.id == current })
        .collect();
    Ok(Json(views))
}

/// End one of the caller's login sessions (e.g. on another device).
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", params(("id" = SessionId, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn end_session(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<SessionId>,
) -> ApiResult<StatusCode> {
    let (_, user) = session_of(&principal)?;
    state.crm().end_session(principal.account_id, user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
