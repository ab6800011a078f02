//! What the HTTP adapters (SendGrid, Slack, GA4) share: the client, base
//! URLs, and the mapping of HTTP failures into [`crm_core::Error`].

use crm_core::{Error, Result};
use reqwest::{RequestBuilder, Response, StatusCode};
use std::time::Duration;
use url::Url;

/// Longest provider message kept in an error.
const MAX_MESSAGE: usize = 300;

/// The default per-request timeout.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client with crm's user agent and a short connect timeout.
pub(crate) fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("crm-connectors/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| Error::Config { message: format!("cannot build the HTTP client: {e}") })
}

/// Parses an `http(s)` base URL (ending in `/` so paths join under it).
/// [`Error::Config`] naming `what` otherwise.
pub(crate) fn base_url(raw: &str, what: &str) -> Result<Url> {
    let mut url = Url::parse(raw).map_err(|_| Error::Config { message: format!("{what} is not a valid URL") })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::Config { message: format!("{what} must be an http(s) URL") });
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `url` joined with `path`. [`Error::Config`] when that fails.
pub(crate) fn join(url: &Url, path: &str) -> Result<Url> {
    url.join(path).map_err(|_| Error::Config { message: format!("cannot build the URL of {path}") })
}

/// `s` cut to [`MAX_MESSAGE`] characters.
pub(crate) fn clip(s: &str) -> String {
    let s = s.trim();
    let mut out: String = s.chars().take(MAX_MESSAGE).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// An [`Error::Provider`] of `provider`.
pub(crate) fn provider_error(
    provider: &'static str,
    transient: bool,
    code: Option<String>,
    message: String,
    retry_after: Option<Duration>,
) -> Error {
    Error::Provider { provider: provider.into(), transient, code, message, retry_after, source: None }
}

/// The `Retry-After` header in seconds (Slack, SendGrid and Google send seconds).
pub(crate) fn retry_after(resp: &Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Sends `req`; a connection failure or timeout is a transient provider error.
pub(crate) async fn send(provider: &'static str, req: RequestBuilder, timeout: Duration) -> Result<Response> {
    req.timeout(timeout).send().await.map_err(|e| {
        let message = if e.is_timeout() {
            format!("{provider} did not answer within {} s", timeout.as_secs())
        } else {
            format!("cannot reach {provider}")
        };
        Error::Provider {
            provider: provider.into(),
            transient: true,
            code: None,
            message,
            retry_after: None,
            source: Some(Box::new(e.without_url())),
        }
    })
}

/// Maps a non-success status: 401/403 → [`Error::Config`] (credentials
/// refused); 429 → transient with `Retry-After`; 5xx → transient; other
/// 4xx → permanent. `message` is the provider's reason, already extracted.
pub(crate) fn status_error(
    provider: &'static str,
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
) -> Error {
    let code = Some(status.as_u16().to_string());
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Error::Config { message: format!("{provider} refused the credentials ({status}): {}", clip(&message)) }
        }
        StatusCode::TOO_MANY_REQUESTS => provider_error(provider, true, code, clip(&message), retry_after),
        s if s.is_server_error() => provider_error(provider, true, code, clip(&message), retry_after),
        _ => provider_error(provider, false, code, clip(&message), None),
    }
}
