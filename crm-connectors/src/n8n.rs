//! The n8n adapter of the [`Workflows`] port.
//!
//! - **Triggers** `POST {base}/webhook/{path}` (a Webhook trigger node's
//!   production URL) with the event as the JSON body, signed the Standard
//!   Webhooks way when a `whsec_` secret is configured: headers
//!   `webhook-id`, `webhook-timestamp`, `webhook-signature` (`v1,<base64
//!   HMAC-SHA256 of id.timestamp.body>`, crm-webhooks' signer), so the
//!   workflow can verify it came from crm.
//! - **Manages** workflows through n8n's public REST API with the
//!   `X-N8N-API-KEY` header: `GET /api/v1/workflows` (cursor pages of at
//!   most 250), `GET /api/v1/workflows/{id}` (also the export: the whole
//!   definition), `POST /api/v1/workflows/{id}/activate|deactivate`.
//! - **Health**: `GET {base}/healthz` → `{"status":"ok"}`.
//!
//! Errors: 401/403 from the API → [`Error::Config`] (the key is refused);
//! 404 → [`Error::NotFound`]; 400 → [`Error::Validation`] (n8n refused the
//! cursor or id it was given); 429 → transient [`Error::Provider`] with
//! `Retry-After`; 5xx, connection failures and timeouts → transient
//! [`Error::Provider`]; other 4xx → permanent. Messages carry n8n's
//! `message` (clipped), never the key or the secret.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crm_core::ports::workflows::{MAX_WORKFLOW_PAGE, Workflow, WorkflowPage, Workflows, check_workflow_id};
use crm_core::{Error, Health, HealthCheck, Result};
use crm_webhooks::signing::SigningSecret;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;
use url::Url;

const PROVIDER: &str = "n8n";
/// Longest n8n message kept in an error.
const MAX_MESSAGE: usize = 200;

/// Builds an [`N8n`].
#[derive(Default)]
pub struct N8nBuilder {
    base_url: Option<String>,
    api_key: Option<String>,
    webhook_secret: Option<SigningSecret>,
    timeout: Option<Duration>,
    client: Option<reqwest::Client>,
}

impl fmt::Debug for N8nBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("N8nBuilder").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl N8nBuilder {
    /// n8n's base URL, e.g. `http://127.0.0.1:5678` (required).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The API key (created in n8n: Settings → n8n API); required for the
    /// management methods, not for triggers.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The `whsec_` secret that signs triggers; unsigned without one.
    pub fn webhook_secret(mut self, secret: SigningSecret) -> Self {
        self.webhook_secret = Some(secret);
        self
    }

    /// Per-request timeout (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The HTTP client to use (default: a new one).
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// [`Error::Config`] without a base URL, or with one that is not `http(s)`.
    pub fn build(self) -> Result<N8n> {
        let raw = self.base_url.ok_or_else(|| Error::Config { message: "N8N_URL is required".into() })?;
        let mut base = Url::parse(&raw).map_err(|_| Error::Config { message: "N8N_URL is not a valid URL".into() })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(Error::Config { message: "N8N_URL must be an http(s) URL".into() });
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let client = crate::http_client(self.client)?;
        Ok(N8n {
            base,
            api_key: self.api_key.filter(|k| !k.is_empty()),
            webhook_secret: self.webhook_secret,
            timeout: self.timeout.unwrap_or(Duration::from_secs(10)),
            client,
        })
    }
}

/// A self-hosted n8n instance. Its `Debug` never shows the key or the secret.
#[derive(Clone)]
pub struct N8n {
    base: Url,
    api_key: Option<String>,
    webhook_secret: Option<SigningSecret>,
    timeout: Duration,
    client: reqwest::Client,
}

impl fmt::Debug for N8n {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("N8n")
            .field("base", &self.base.as_str())
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("signed", &self.webhook_secret.is_some())
            .finish()
    }
}

/// A workflow as n8n's API returns it (the fields crm reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiWorkflow {
    id: String,
    name: String,
    #[serde(default)]
    active: bool,
    #[serde(default)]
    tags: Vec<ApiTag>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
struct ApiTag {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiPage {
    data: Vec<ApiWorkflow>,
    next_cursor: Option<String>,
}

impl From<ApiWorkflow> for Workflow {
    fn from(w: ApiWorkflow) -> Self {
        Workflow {
            id: w.id,
            name: w.name,
            active: w.active,
            tags: w.tags.into_iter().map(|t| t.name).collect(),
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

fn provider(transient: bool, code: Option<String>, message: String, retry_after: Option<Duration>) -> Error {
    Error::Provider { provider: PROVIDER.into(), transient, code, message, retry_after, source: None }
}

fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(MAX_MESSAGE).collect()
}

impl N8n {
    /// Starts a builder.
    pub fn builder() -> N8nBuilder {
        N8nBuilder::default()
    }

    /// The webhook URL a trigger target names: a path under `{base}/webhook/`,
    /// or an absolute URL on n8n's own host and port.
    pub fn webhook_url(&self, workflow: &str) -> Result<Url> {
        let bad = || Error::validation("workflow", "must be a webhook path (a-z, 0-9, -, _, /) or a URL on n8n's host");
        if workflow.starts_with("http://") || workflow.starts_with("https://") {
            let url = Url::parse(workflow).map_err(|_| bad())?;
            let same = url.scheme() == self.base.scheme()
                && url.host_str() == self.base.host_str()
                && url.port_or_known_default() == self.base.port_or_known_default();
            return if same { Ok(url) } else { Err(bad()) };
        }
        let path = workflow.trim_matches('/');
        let ok = (1..=200).contains(&path.len())
            && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_/".contains(&b))
            && !path.contains("//");
        if !ok {
            return Err(bad());
        }
        self.base.join(&format!("webhook/{path}")).map_err(|_| bad())
    }

    fn api_url(&self, path: &str) -> Result<Url> {
        self.base.join(&format!("api/v1/{path}")).map_err(|_| Error::validation("id", "not a valid path"))
    }

    fn api_request(&self, method: Method, url: Url) -> Result<RequestBuilder> {
        let key = self
            .api_key
            .as_deref()
            .ok_or_else(|| Error::Config { message: "N8N_API_KEY is not set: n8n's API is not available".into() })?;
        Ok(self.client.request(method, url).header("X-N8N-API-KEY", key).timeout(self.timeout))
    }

    fn api(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        self.api_request(method, self.api_url(path)?)
    }

    async fn send(&self, req: RequestBuilder, what: &str) -> Result<Response> {
        req.send().await.map_err(|e| {
            let message = if e.is_timeout() {
                format!("n8n did not answer {what} within {} s", self.timeout.as_secs())
            } else {
                format!("could not reach n8n ({what})")
            };
            provider(true, None, message, None)
        })
    }

    /// Maps a non-success answer into an error; `api`: the REST API (whose
    /// 401/403 mean the key is refused).
    async fn failure(resp: Response, api: bool, what: &str) -> Error {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.text().await.unwrap_or_default();
        let said = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(clip))
            .unwrap_or_default();
        let message =
            if said.is_empty() { format!("{what}: HTTP {}", status.as_u16()) } else { format!("{what}: {said}") };
        let code = Some(status.as_u16().to_string());
        match status {
            StatusCode::NOT_FOUND => Error::not_found("workflow"),
            // n8n refuses what it was asked (a malformed cursor or id): the caller's input.
            StatusCode::BAD_REQUEST if api => Error::validation("request", message),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if api => {
                Error::Config { message: format!("n8n refused the API key (HTTP {})", status.as_u16()) }
            }
            StatusCode::TOO_MANY_REQUESTS => provider(true, code, message, retry_after),
            s if s.is_server_error() => provider(true, code, message, retry_after),
            _ => provider(false, code, message, None),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, req: RequestBuilder, what: &str) -> Result<T> {
        let resp = self.send(req, what).await?;
        if !resp.status().is_success() {
            return Err(Self::failure(resp, true, what).await);
        }
        resp.json::<T>().await.map_err(|_| provider(false, None, format!("{what}: n8n's answer does not parse"), None))
    }

    async fn workflow_call(&self, method: Method, path: String, what: &str) -> Result<Workflow> {
        let req = self.api(method, &path)?;
        Ok(self.json::<ApiWorkflow>(req, what).await?.into())
    }
}

#[async_trait]
impl Workflows for N8n {
    async fn trigger(&self, workflow: &str, event: &serde_json::Value) -> Result<serde_json::Value> {
        let url = self.webhook_url(workflow)?;
        let body = serde_json::to_vec(event).map_err(|e| Error::validation("event", e.to_string()))?;
        let mut req = self
            .client
            .post(url)
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some(secret) = &self.webhook_secret {
            let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
            let ts = Utc::now().timestamp();
            req = req
                .header("webhook-id", &id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", secret.sign(&id, ts, &body));
        }
        let resp = self.send(req, "triggering a workflow").await?;
        if !resp.status().is_success() {
            return Err(Self::failure(resp, false, "triggering a workflow").await);
        }
        let text = resp.text().await.unwrap_or_default();
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(clip(&text))))
    }

    async fn list_workflows(&self, cursor: Option<&str>, limit: u32) -> Result<WorkflowPage> {
        if !(1..=MAX_WORKFLOW_PAGE).contains(&limit) {
            return Err(Error::validation("limit", format!("must be between 1 and {MAX_WORKFLOW_PAGE}")));
        }
        let mut url = self.api_url("workflows")?;
        url.query_pairs_mut().append_pair("limit", &limit.to_string());
        if let Some(c) = cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let page: ApiPage = self.json(self.api_request(Method::GET, url)?, "listing workflows").await?;
        Ok(WorkflowPage {
            items: page.data.into_iter().map(Workflow::from).collect(),
            next_cursor: page.next_cursor.filter(|c| !c.is_empty()),
        })
    }

    async fn get_workflow(&self, id: &str) -> Result<Workflow> {
        check_workflow_id(id)?;
        self.workflow_call(Method::GET, format!("workflows/{id}"), "reading a workflow").await
    }

    async fn activate(&self, id: &str) -> Result<Workflow> {
        check_workflow_id(id)?;
        self.workflow_call(Method::POST, format!("workflows/{id}/activate"), "activating a workflow").await
    }

    async fn deactivate(&self, id: &str) -> Result<Workflow> {
        check_workflow_id(id)?;
        self.workflow_call(Method::POST, format!("workflows/{id}/deactivate"), "deactivating a workflow").await
    }

    async fn export_workflow(&self, id: &str) -> Result<serde_json::Value> {
        check_workflow_id(id)?;
        let req = self.api(Method::GET, &format!("workflows/{id}"))?;
        self.json(req, "exporting a workflow").await
    }
}

#[async_trait]
impl HealthCheck for N8n {
    fn name(&self) -> &str {
        "n8n"
    }

    async fn check(&self) -> Health {
        let timeout = self.timeout.min(Duration::from_secs(2));
        Health::measure(async {
            let url = self.base.join("healthz").map_err(|_| "bad URL".to_owned())?;
            let resp = self.client.get(url).timeout(timeout).send().await.map_err(|e| {
                if e.is_timeout() { format!("no answer within {timeout:?}") } else { "unreachable".to_owned() }
            })?;
            if !resp.status().is_success() {
                return Err(format!("/healthz answered HTTP {}", resp.status().as_u16()));
            }
            let body: serde_json::Value = resp.json().await.map_err(|_| "/healthz answer does not parse".to_owned())?;
            if body["status"] != "ok" {
                return Err("/healthz did not say ok".to_owned());
            }
            Ok::<(), String>(())
        })
        .await
    }
}
