//! Errors as `application/problem+json` (RFC 9457).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::borrow::Cow;

/// The problem document every error response carries.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable identifier of the problem kind, e.g. `/problems/not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong in this request.
    pub detail: String,
    /// The invalid field, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait, for rate-limit problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// An error a handler returns; converts into a problem response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    field: Option<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error of a given status, kind and detail.
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self { status, kind, title, detail: detail.into(), field: None, retry_after: None }
    }

    /// 400 Bad Request.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request", detail)
    }

    /// 404 for an unknown route or entity.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this route does not accept this method",
        )
    }

    /// 413.
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large", detail)
    }

    /// 415.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send a JSON body with Content-Type: application/json",
        )
    }

    /// 422 with the offending field.
    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid request", detail);
        e.field = Some(field.into());
        e
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail)
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// 429 with a Retry-After.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            format!("rate limit exceeded; retry in {retry_after_secs} s"),
        );
        e.retry_after = Some(retry_after_secs);
        e
    }

    /// 503 with a Retry-After: a dependency the request needs is down.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable", detail);
        e.retry_after = Some(retry_after_secs);
        e
    }

    /// 409 `/problems/channel-not-connected`: the channel's session is not
    /// connected now (opening, pairing, reconnecting, open in another
    /// process); the same call may succeed once it is. Carries a
    /// Retry-After of a few seconds as a hint.
    pub fn channel_not_connected(detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::CONFLICT, "channel-not-connected", "Channel not connected", detail);
        e.retry_after = Some(5);
        e
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The problem body.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("/problems/{}", self.kind),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            field: self.field.clone(),
            retry_after: self.retry_after,
        }
    }
}

impl From<crm_core::Error> for ApiError {
    fn from(e: crm_core::Error) -> Self {
        use crm_core::Error as E;
        match e {
            E::NotFound { entity } => ApiError::not_found(format!("{entity} not found")),
            E::Conflict { entity, reason } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", format!("{entity}: {reason}"))
            }
            E::Validation { field, reason } => {
                let detail = format!("invalid {field}: {reason}");
                ApiError::validation(field.into_owned(), detail)
            }
            E::TooLarge { what, limit } => ApiError::payload_too_large(if limit > 0 {
                format!("the {what} is larger than {limit} bytes")
            } else {
                format!("the {what} is too large")
            }),
            E::Unauthorized => ApiError::unauthorized("missing, invalid, expired or revoked credentials"),
            E::Forbidden { reason } => ApiError::forbidden(reason),
            E::Unsupported { provider, operation } => ApiError::new(
                StatusCode::CONFLICT,
                "unsupported",
                "Not supported by the channel",
                format!("the channel's provider ({provider}) does not support {operation}"),
            ),
            E::NotConnected { provider, reason } => ApiError::channel_not_connected(format!(
                "the {provider} channel is not connected ({reason}); retry once it is (`channel.state_changed`)"
            )),
            E::RateLimited { retry_after } => ApiError::rate_limited(retry_after.as_secs_f64().ceil().max(1.0) as u64),
            E::Provider { provider, transient, code, message, .. } => {
                tracing::warn!(%provider, transient, code = code.as_deref().unwrap_or(""), "provider error: {message}");
                let status = if transient { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::BAD_GATEWAY };
                ApiError::new(
                    status,
                    "provider",
                    "Provider error",
                    format!("{provider} refused the request: {message}"),
                )
            }
            other @ (E::Storage { .. } | E::Config { .. }) => {
                let chain = error_chain(&other, ": ");
                tracing::error!(error = %chain, "internal error");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service unavailable",
                    "a dependency failed; try again later",
                )
            }
            other => {
                tracing::error!(error = %other, "unexpected error kind");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable", "try again later")
            }
        }
    }
}

/// An error and its causes joined by `separator` (`": "` for log lines,
/// `"\n  caused by: "` for the CLI).
pub fn error_chain(e: &dyn std::error::Error, separator: &str) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(separator);
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut res = (self.status, body).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(v) = self.retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// A human name for a JSON rejection's cause without echoing the body.
pub(crate) fn clip(s: impl Into<Cow<'static, str>>) -> String {
    let s: Cow<'static, str> = s.into();
    s.chars().take(300).collect()
}
