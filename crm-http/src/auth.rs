//! Authentication and per-client rate limiting.

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::time::Duration;

use crm_core::{AccountId, ApiKeyId, Decision, Quota, Role};

use crate::error::ApiError;
use crate::state::AppState;

/// Who is calling: resolved from the bearer token by the auth middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The account every handler is scoped to.
    pub account_id: AccountId,
    /// The API key (or login token) used.
    pub key_id: ApiKeyId,
    /// What it may do.
    pub role: Role,
}

impl Principal {
    /// [`ApiError`] 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role.includes(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this action needs the {} role", role.as_str())))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .copied()
            .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <api key>"))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

fn set_rate_headers(res: &mut Response, d: &Decision) {
    let h = res.headers_mut();
    let secs = |d: Duration| d.as_secs_f64().ceil() as u64;
    h.insert(X_RATELIMIT_LIMIT, HeaderValue::from(d.limit));
    h.insert(X_RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
    h.insert(X_RATELIMIT_RESET, HeaderValue::from(secs(d.reset_after)));
    if let Some(r) = d.retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs(r).max(1)));
    }
}

async fn limited(state: &AppState, key: &str, per_minute: u32, req: Request, next: Next) -> Response {
    let quota = match Quota::per_minute(per_minute) {
        Ok(q) => q,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let decision = match state.inner.limiter.check(key, &quota).await {
        Ok(d) => Some(d),
        Err(e) => {
            // Fail open: a limiter outage must not take the API down; /ready reports it.
            tracing::warn!(error = %e, "rate limiter unavailable; request allowed");
            None
        }
    };
    let mut res = match decision {
        Some(d) if !d.allowed => {
            let secs = d.retry_after.map_or(60, |r| r.as_secs_f64().ceil().max(1.0) as u64);
            ApiError::rate_limited(secs).into_response()
        }
        _ => next.run(req).await,
    };
    if let Some(d) = decision {
        set_rate_headers(&mut res, &d);
    }
    res
}

/// Middleware for authenticated routes: resolves the bearer token into a
/// [`Principal`] (401 otherwise) and applies the per-key rate limit.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(req.headers()) else {
        return ApiError::unauthorized("send Authorization: Bearer <api key>").into_response();
    };
    let key = match state.crm().authenticate(token).await {
        Ok(k) => k,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let principal = Principal { account_id: key.account_id, key_id: key.id, role: key.role };
    req.extensions_mut().insert(principal);
    let limit_key = format!("key:{}", key.id);
    let per_minute = state.settings().per_key_per_minute;
    limited(&state, &limit_key, per_minute, req, next).await
}

/// Middleware for unauthenticated routes: the per-IP rate limit.
pub async fn limit_by_ip(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
    let per_minute = state.settings().per_ip_per_minute;
    limited(&state, &format!("ip:{ip}"), per_minute, req, next).await
}
