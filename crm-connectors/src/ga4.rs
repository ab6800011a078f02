//! The Google Analytics 4 adapter of the [`Analytics`] port: the
//! Measurement Protocol, server-side.
//!
//! - **Collects** `POST {base}/mp/collect?measurement_id=G-…&api_secret=…`
//!   with `{"client_id", "user_id"?, "events": [{"name", "params"}]}`, at
//!   most [`MAX_ANALYTICS_BATCH`] (25) events per request; GA4 answers 2xx
//!   with no body and never says whether it kept the events.
//! - **Debug mode** posts the same batches to `/debug/mp/collect`, which
//!   records nothing and answers `{"validationMessages": [{"fieldPath",
//!   "description", "validationCode"}]}`; messages come back as
//!   [`Error::Validation`] (field = the first message's `fieldPath`, reason
//!   = every message), as the typed [`ValidationMessage`]s from
//!   [`Ga4::validate`].
//! - **Errors**: 401/403 → [`Error::Config`]; 429 → transient with
//!   `Retry-After`; 5xx and timeouts → transient; other 4xx → permanent.
//!   The API secret travels in the query string and never appears in an
//!   error (reqwest's URL is stripped) or in `Debug`.

use async_trait::async_trait;
use crm_core::domain::connection::Connection;
use crm_core::ports::connectors::{
    Analytics, AnalyticsEvent, AnalyticsUser, Capability, Connector, ConnectorFactory, MAX_ANALYTICS_BATCH, check_track,
};
use crm_core::secrets::Credentials;
use crm_core::{Error, Result};
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

use crate::http::{self, DEFAULT_TIMEOUT};

const PROVIDER: &str = "ga4";
/// The Measurement Protocol's base URL.
pub const GA4_API: &str = "https://www.google-analytics.com/";

/// One message of the validation endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationMessage {
    /// Where (`events`, `events.params.currency`, …).
    #[serde(default)]
    pub field_path: String,
    /// What is wrong.
    #[serde(default)]
    pub description: String,
    /// GA4's code (`VALUE_INVALID`, `NAME_RESERVED`, …).
    #[serde(default)]
    pub validation_code: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DebugAnswer {
    #[serde(default)]
    validation_messages: Vec<ValidationMessage>,
}

/// A GA4 data stream's Measurement Protocol. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct Ga4 {
    base: Url,
    measurement_id: String,
    api_secret: String,
    debug: bool,
    timeout: Duration,
    client: reqwest::Client,
}

impl fmt::Debug for Ga4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ga4")
            .field("base", &self.base.as_str())
            .field("measurement_id", &self.measurement_id)
            .field("debug", &self.debug)
            .finish_non_exhaustive()
    }
}

/// Checks a measurement id: `G-` and 4–20 upper-case letters or digits.
pub fn check_measurement_id(id: &str) -> Result<()> {
    let ok = id.strip_prefix("G-").is_some_and(|rest| {
        (4..=20).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    if !ok {
        return Err(Error::validation("settings.measurement_id", "must look like G-XXXXXXXXXX"));
    }
    Ok(())
}

impl Ga4 {
    /// A collector for `measurement_id` with `api_secret` at `base` (default
    /// [`GA4_API`]). [`Error::Config`] for a bad id, an empty secret or a bad URL.
    pub fn new(
        base: Option<&str>,
        measurement_id: &str,
        api_secret: &str,
        client: Option<reqwest::Client>,
    ) -> Result<Self> {
        check_measurement_id(measurement_id).map_err(|e| Error::Config { message: e.to_string() })?;
        if api_secret.trim().is_empty() {
            return Err(Error::Config { message: "the GA4 API secret is empty".into() });
        }
        Ok(Self {
            base: http::base_url(base.unwrap_or(GA4_API), "the GA4 base URL")?,
            measurement_id: measurement_id.to_owned(),
            api_secret: api_secret.to_owned(),
            debug: false,
            timeout: DEFAULT_TIMEOUT,
            client: client.map_or_else(http::client, Ok)?,
        })
    }

    /// Validates through `/debug/mp/collect` instead of collecting.
    pub fn debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }

    /// Per-request timeout (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The body of one batch.
    pub fn body(user: &AnalyticsUser, events: &[AnalyticsEvent]) -> Value {
        let mut body = json!({
            "client_id": user.client_id,
            "events": events.iter().map(|e| json!({ "name": e.name, "params": e.params })).collect::<Vec<_>>(),
        });
        if let Some(u) = &user.user_id {
            body["user_id"] = u.as_str().into();
        }
        body
    }

    async fn post(&self, path: &str, body: &Value) -> Result<reqwest::Response> {
        let mut url = http::join(&self.base, path)?;
        url.query_pairs_mut()
            .append_pair("measurement_id", &self.measurement_id)
            .append_pair("api_secret", &self.api_secret);
        let resp = http::send(PROVIDER, self.client.post(url).json(body), self.timeout).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let wait = http::retry_after(&resp);
        Err(http::status_error(PROVIDER, status, format!("GA4 answered {status}"), wait))
    }

    /// Sends the events to the validation endpoint (in batches) and returns
    /// its messages (empty when GA4 accepts them all). Records nothing.
    pub async fn validate(&self, user: &AnalyticsUser, events: &[AnalyticsEvent]) -> Result<Vec<ValidationMessage>> {
        check_track(user, events)?;
        let mut messages = Vec::new();
        for batch in events.chunks(MAX_ANALYTICS_BATCH) {
            let resp = self.post("debug/mp/collect", &Self::body(user, batch)).await?;
            let answer: DebugAnswer = resp.json().await.map_err(|_| {
                http::provider_error(
                    PROVIDER,
                    true,
                    None,
                    "the GA4 validation endpoint answered malformed JSON".into(),
                    None,
                )
            })?;
            messages.extend(answer.validation_messages);
        }
        Ok(messages)
    }
}

/// The messages as one [`Error::Validation`].
fn validation_error(messages: &[ValidationMessage]) -> Error {
    let field =
        messages.first().map(|m| m.field_path.clone()).filter(|f| !f.is_empty()).unwrap_or_else(|| "events".into());
    let reason = messages
        .iter()
        .map(|m| format!("{} ({}): {}", m.field_path, m.validation_code, m.description))
        .collect::<Vec<_>>()
        .join("; ");
    Error::validation(field, http::clip(&format!("GA4 refused the events: {reason}")))
}

#[async_trait]
impl Analytics for Ga4 {
    fn provider(&self) -> &str {
        PROVIDER
    }

    async fn track(&self, user: &AnalyticsUser, events: &[AnalyticsEvent]) -> Result<()> {
        check_track(user, events)?;
        if self.debug {
            let messages = self.validate(user, events).await?;
            return if messages.is_empty() { Ok(()) } else { Err(validation_error(&messages)) };
        }
        for batch in events.chunks(MAX_ANALYTICS_BATCH) {
            self.post("mp/collect", &Self::body(user, batch)).await?;
        }
        Ok(())
    }
}

/// Builds GA4 collectors from connections: settings `measurement_id`
/// (required) and `debug` (validate only); credentials `api_secret`.
#[derive(Debug, Clone)]
pub struct Ga4Factory {
    base_url: String,
    client: Option<reqwest::Client>,
}

impl Default for Ga4Factory {
    fn default() -> Self {
        Self { base_url: GA4_API.into(), client: None }
    }
}

impl Ga4Factory {
    /// A factory for the Measurement Protocol at `base_url` (tests: a local mock).
    pub fn new(base_url: impl Into<String>) -> Self {
        Self { base_url: base_url.into(), client: None }
    }

    /// Shares one HTTP client among the built collectors.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }
}

#[async_trait]
impl ConnectorFactory for Ga4Factory {
    fn kind(&self) -> &str {
        PROVIDER
    }

    fn capability(&self) -> Capability {
        Capability::Analytics
    }

    fn validate(&self, settings: &Value, credentials: Option<&Credentials>) -> Result<()> {
        check_measurement_id(settings["measurement_id"].as_str().unwrap_or_default())?;
        if settings.get("debug").is_some_and(|d| !d.is_boolean()) {
            return Err(Error::validation("settings.debug", "must be true or false"));
        }
        if let Some(c) = credentials
            && c.get("api_secret").is_none_or(|s| s.trim().is_empty())
        {
            return Err(Error::validation("credentials.api_secret", "is required"));
        }
        Ok(())
    }

    async fn build(&self, connection: &Connection, credentials: Credentials) -> Result<Connector> {
        let id = connection.settings["measurement_id"].as_str().unwrap_or_default();
        let secret = credentials
            .get("api_secret")
            .ok_or_else(|| Error::Config { message: "the GA4 connection has no API secret".into() })?;
        let ga = Ga4::new(Some(&self.base_url), id, secret, self.client.clone())?
            .debug(connection.settings["debug"].as_bool().unwrap_or(false));
        Ok(Connector::Analytics(Arc::new(ga)))
    }
}
