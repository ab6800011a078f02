//! The Slack adapter of the [`Notifier`] port, in its two forms:
//!
//! - **Incoming webhook**: `POST <webhook URL>` with `{"text", "blocks"}`;
//!   Slack answers `200 ok`, or a status with a plain-text reason
//!   (`400 invalid_payload`, `403 invalid_token`, `404 no_service`,
//!   `410 channel_is_archived`, `429` with `Retry-After`, `500 rollup_error`).
//! - **`chat.postMessage`** with a bot token: `POST {base}/api/chat.postMessage`
//!   with `Authorization: Bearer xoxb-…` and `{"channel", "text", "blocks"}`;
//!   Slack answers `200 {"ok": true, "ts": …}` or `200 {"ok": false,
//!   "error": "channel_not_found"}`, and `429` with `Retry-After` when rate
//!   limited.
//!
//! Errors: a refused token or webhook (`invalid_auth`, `not_authed`,
//! `token_revoked`, `invalid_token`, `account_inactive`, 401/403) →
//! [`Error::Config`]; 429 → transient [`Error::Provider`] with the
//! `Retry-After` wait, so the job runs again then; 5xx and timeouts →
//! transient; other refusals → permanent, with Slack's error code.

use async_trait::async_trait;
use crm_core::domain::connection::Connection;
use crm_core::ports::connectors::{Capability, Connector, ConnectorFactory, Notification, Notifier};
use crm_core::secrets::Credentials;
use crm_core::{Error, Result};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

use crate::http::{self, DEFAULT_TIMEOUT};

const PROVIDER: &str = "slack";
/// Slack's Web API base URL.
pub const SLACK_API: &str = "https://slack.com/";
/// Where Slack's incoming webhooks live.
pub const SLACK_WEBHOOKS: &str = "https://hooks.slack.com/";

/// Slack error codes that mean the credentials are refused.
const AUTH_ERRORS: &[&str] =
    &["invalid_auth", "not_authed", "token_revoked", "token_expired", "invalid_token", "account_inactive"];

/// Where a [`Slack`] notifier posts.
#[derive(Clone)]
enum Target {
    Webhook(Url),
    Bot { api: Url, token: String, channel: Option<String> },
}

/// A Slack notifier. Its `Debug` never shows the token or the webhook URL.
#[derive(Clone)]
pub struct Slack {
    target: Target,
    timeout: Duration,
    client: reqwest::Client,
}

impl fmt::Debug for Slack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.target {
            Target::Webhook(_) => "incoming-webhook",
            Target::Bot { .. } => "bot",
        };
        f.debug_struct("Slack").field("mode", &mode).finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct ApiAnswer {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
}

impl Slack {
    /// A notifier posting to an incoming-webhook URL. [`Error::Config`] for
    /// a URL that is not `http(s)`.
    pub fn webhook(url: &str, client: Option<reqwest::Client>) -> Result<Self> {
        let url = Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| Error::Config { message: "the Slack webhook URL is not an http(s) URL".into() })?;
        Ok(Self {
            target: Target::Webhook(url),
            timeout: DEFAULT_TIMEOUT,
            client: client.map_or_else(http::client, Ok)?,
        })
    }

    /// A notifier calling `chat.postMessage` at `api_base` (default
    /// [`SLACK_API`]) with a bot token, posting to `channel` unless a
    /// notification names its own.
    pub fn bot(api_base: &str, token: &str, channel: Option<String>, client: Option<reqwest::Client>) -> Result<Self> {
        if token.trim().is_empty() {
            return Err(Error::Config { message: "the Slack bot token is empty".into() });
        }
        let api = http::base_url(api_base, "the Slack API base URL")?;
        let target = Target::Bot { api, token: token.to_owned(), channel };
        Ok(Self { target, timeout: DEFAULT_TIMEOUT, client: client.map_or_else(http::client, Ok)? })
    }

    /// Per-request timeout (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The JSON body Slack gets for `n` (`channel` only for the bot form).
    pub fn body(n: &Notification, channel: Option<&str>) -> Value {
        let mut body = json!({ "text": n.text });
        if !n.blocks.is_empty() {
            body["blocks"] = Value::Array(n.blocks.clone());
        }
        if let Some(c) = channel {
            body["channel"] = c.into();
        }
        body
    }

    fn refusal(code: &str, status: StatusCode, wait: Option<Duration>) -> Error {
        if AUTH_ERRORS.contains(&code) || matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Error::Config { message: format!("Slack refused the credentials: {}", http::clip(code)) };
        }
        if code == "ratelimited" {
            return http::provider_error(PROVIDER, true, Some(code.into()), "rate limited".into(), wait);
        }
        http::status_error(PROVIDER, status, code.to_owned(), wait).with_code(code)
    }
}

/// Replaces a provider error's code with Slack's error code.
trait WithCode {
    fn with_code(self, code: &str) -> Self;
}

impl WithCode for Error {
    fn with_code(self, slack_code: &str) -> Self {
        match self {
            Error::Provider { provider, transient, message, retry_after, source, .. } => Error::Provider {
                provider,
                transient,
                code: Some(http::clip(slack_code)),
                message,
                retry_after,
                source,
            },
            e => e,
        }
    }
}

#[async_trait]
impl Notifier for Slack {
    fn provider(&self) -> &str {
        PROVIDER
    }

    async fn notify(&self, n: &Notification) -> Result<()> {
        n.check()?;
        let req = match &self.target {
            Target::Webhook(url) => self.client.post(url.clone()).json(&Self::body(n, None)),
            Target::Bot { api, token, channel } => {
                let channel = n.channel.as_deref().or(channel.as_deref()).ok_or_else(|| {
                    Error::validation("channel", "chat.postMessage needs a channel (set the connection's default)")
                })?;
                let url = http::join(api, "api/chat.postMessage")?;
                self.client.post(url).bearer_auth(token).json(&Self::body(n, Some(channel)))
            }
        };
        let resp = http::send(PROVIDER, req, self.timeout).await?;
        let status = resp.status();
        let wait = http::retry_after(&resp);
        let text = resp.text().await.unwrap_or_default();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(http::provider_error(PROVIDER, true, Some("429".into()), "rate limited".into(), wait));
        }
        match &self.target {
            Target::Webhook(_) if status.is_success() => Ok(()),
            Target::Webhook(_) => Err(Self::refusal(text.trim(), status, wait)),
            Target::Bot { .. } if !status.is_success() => Err(Self::refusal(&format!("HTTP {status}"), status, wait)),
            Target::Bot { .. } => match serde_json::from_str::<ApiAnswer>(&text) {
                Ok(a) if a.ok => Ok(()),
                Ok(a) => {
                    Err(Self::refusal(a.error.as_deref().unwrap_or("unknown_error"), StatusCode::BAD_REQUEST, wait))
                }
                Err(_) => Err(http::provider_error(PROVIDER, true, None, "Slack answered malformed JSON".into(), None)),
            },
        }
    }
}

/// Builds Slack notifiers from connections. Credentials `webhook_url` (an
/// incoming webhook) or `bot_token` (with settings `channel`, the default
/// channel). Webhook URLs must start with the allowed prefix (default
/// [`SLACK_WEBHOOKS`]), so a connection cannot make crm post anywhere.
#[derive(Debug, Clone)]
pub struct SlackFactory {
    api_base: String,
    webhook_prefix: String,
    client: Option<reqwest::Client>,
}

impl Default for SlackFactory {
    fn default() -> Self {
        Self { api_base: SLACK_API.into(), webhook_prefix: SLACK_WEBHOOKS.into(), client: None }
    }
}

impl SlackFactory {
    /// A factory for Slack's API at `api_base` accepting webhook URLs under
    /// `webhook_prefix` (tests: a local mock for both).
    pub fn new(api_base: impl Into<String>, webhook_prefix: impl Into<String>) -> Self {
        Self { api_base: api_base.into(), webhook_prefix: webhook_prefix.into(), client: None }
    }

    /// Shares one HTTP client among the built notifiers.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }
}

#[async_trait]
impl ConnectorFactory for SlackFactory {
    fn kind(&self) -> &str {
        PROVIDER
    }

    fn capability(&self) -> Capability {
        Capability::Notify
    }

    fn validate(&self, settings: &Value, credentials: Option<&Credentials>) -> Result<()> {
        if let Some(c) = settings.get("channel")
            && !c.as_str().is_some_and(|c| (1..=80).contains(&c.chars().count()) && !c.contains(char::is_whitespace))
        {
            return Err(Error::validation("settings.channel", "must be a channel name or id (1 to 80 characters)"));
        }
        let Some(c) = credentials else { return Ok(()) };
        match (c.get("webhook_url"), c.get("bot_token")) {
            (Some(url), None) => {
                if !url.starts_with(&self.webhook_prefix) || Url::parse(url).is_err() {
                    return Err(Error::validation(
                        "credentials.webhook_url",
                        format!("must be a Slack incoming-webhook URL ({}…)", self.webhook_prefix),
                    ));
                }
                Ok(())
            }
            (None, Some(token)) if !token.trim().is_empty() => {
                if settings.get("channel").is_none() {
                    return Err(Error::validation("settings.channel", "a bot token needs a default channel"));
                }
                Ok(())
            }
            _ => Err(Error::validation("credentials", "give either webhook_url or bot_token")),
        }
    }

    async fn build(&self, connection: &Connection, credentials: Credentials) -> Result<Connector> {
        let slack = if let Some(url) = credentials.get("webhook_url") {
            if !url.starts_with(&self.webhook_prefix) {
                return Err(Error::Config { message: "the Slack webhook URL is not an allowed one".into() });
            }
            Slack::webhook(url, self.client.clone())?
        } else if let Some(token) = credentials.get("bot_token") {
            let channel = connection.settings["channel"].as_str().map(str::to_owned);
            Slack::bot(&self.api_base, token, channel, self.client.clone())?
        } else {
            return Err(Error::Config {
                message: "the Slack connection has neither a webhook URL nor a bot token".into(),
            });
        };
        Ok(Connector::Notify(Arc::new(slack)))
    }
}
