//! The Salesforce adapter of the [`ExternalCrm`] port: the REST API on an
//! account's OAuth grant ([`AccessTokens`], provider `salesforce`).
//!
//! - **Push**: a contact without a link is created as a `Lead` (`POST
//!   {instance_url}/services/data/{version}/sobjects/Lead/`, body
//!   `FirstName`, `LastName`, `Company`, `Email`, `Phone`, `LeadSource`) —
//!   or a `Contact` when its stage is `won`; a linked one is updated
//!   (`PATCH …/sobjects/{object}/{id}`, 204).
//! - **Pull**: SOQL through `GET …/query?q=` on `LastModifiedDate` for
//!   Leads and Contacts, merged oldest first.
//! - **Sessions**: `401` (`INVALID_SESSION_ID`) refreshes the token once
//!   and retries; a second 401 is [`Error::Config`].
//! - **Limits**: `403 REQUEST_LIMIT_EXCEEDED`, 429 and 5xx are transient
//!   with a `retry_after` (the `Retry-After` header, else 15 minutes for
//!   the daily limit); when `Sforce-Limit-Info: api-usage=N/M` reports at
//!   least 95 % used, further calls for that account wait 15 minutes
//!   without calling.
//! - Other errors: the body `[{"message","errorCode"}]` → 400 is
//!   [`Error::Validation`], 404 [`Error::NotFound`]. Tokens never appear in errors.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use crm_core::ports::external_crm::{ExternalChange, ExternalCrm, MAX_PULL, PushedRecord};
use crm_core::ports::oauth::{AccessToken, AccessTokens, ExternalLink, OAuthProvider};
use crm_core::{AccountId, Clock, Contact, Error, LeadStage, Result, SystemClock};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::oauth::{retry_after, transport};

const PROVIDER: &str = "salesforce";
/// How long to wait after the daily API limit is (nearly) reached.
const LIMIT_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Share of the daily limit (percent) after which crm backs off.
const LIMIT_PERCENT: u64 = 95;

/// Builds a [`SalesforceCrm`].
#[derive(Debug, Default)]
pub struct SalesforceCrmBuilder {
    tokens: Option<Arc<dyn AccessTokens>>,
    api_version: Option<String>,
    timeout: Option<Duration>,
    client: Option<reqwest::Client>,
    clock: Option<Arc<dyn Clock>>,
}

impl SalesforceCrmBuilder {
    /// Where access tokens come from (required).
    pub fn tokens(mut self, tokens: Arc<dyn AccessTokens>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// The REST API version (default `v62.0`).
    pub fn api_version(mut self, v: impl Into<String>) -> Self {
        self.api_version = Some(v.into());
        self
    }

    /// Per-request timeout (default 15 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The HTTP client to use.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The clock limits are measured with (default the system's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// [`Error::Config`] without tokens or with a malformed version.
    pub fn build(self) -> Result<SalesforceCrm> {
        let tokens =
            self.tokens.ok_or_else(|| Error::Config { message: "Salesforce needs an OAuth token source".into() })?;
        let api_version = self.api_version.unwrap_or_else(|| "v62.0".into());
        let ok = api_version
            .strip_prefix('v')
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
        if !ok {
            return Err(Error::Config { message: "the Salesforce API version must look like v62.0".into() });
        }
        let client = crate::http_client(self.client)?;
        Ok(SalesforceCrm {
            tokens,
            api_version,
            timeout: self.timeout.unwrap_or(Duration::from_secs(15)),
            client,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            backoff: Arc::default(),
        })
    }
}

/// Salesforce's REST API for many accounts, each on its own grant.
#[derive(Clone)]
pub struct SalesforceCrm {
    tokens: Arc<dyn AccessTokens>,
    api_version: String,
    timeout: Duration,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// Accounts near their daily limit, and until when crm waits.
    backoff: Arc<Mutex<HashMap<AccountId, DateTime<Utc>>>>,
}

impl fmt::Debug for SalesforceCrm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SalesforceCrm").field("api_version", &self.api_version).finish_non_exhaustive()
    }
}

/// One entry of Salesforce's error array.
#[derive(Deserialize)]
struct ApiError {
    message: Option<String>,
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
}

fn provider(transient: bool, code: Option<String>, message: String, retry_after: Option<Duration>) -> Error {
    Error::Provider { provider: PROVIDER.into(), transient, code, message, retry_after, source: None }
}

fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// `(used, limit)` from `Sforce-Limit-Info: api-usage=25/15000`.
fn api_usage(res: &Response) -> Option<(u64, u64)> {
    let v = res.headers().get("sforce-limit-info")?.to_str().ok()?;
    let usage = v.split(',').find_map(|p| p.trim().strip_prefix("api-usage="))?;
    let (used, limit) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, limit.trim().parse().ok()?))
}

/// Splits a display name into Salesforce's first and last names (LastName is required).
fn names(name: &str) -> (Option<String>, String) {
    let name = name.trim();
    match name.rsplit_once(' ') {
        Some((first, last)) if !last.is_empty() => (Some(first.trim().to_owned()), last.to_owned()),
        _ => (None, name.to_owned()),
    }
}

/// Salesforce's datetime (`2024-05-01T12:00:00.000+0000`).
fn sf_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z").ok().map(|t| t.with_timezone(&Utc))
}

impl SalesforceCrm {
    /// Starts a builder.
    pub fn builder() -> SalesforceCrmBuilder {
        SalesforceCrmBuilder::default()
    }

    fn api_base(&self, token: &AccessToken) -> Result<String> {
        let host = token.instance_url.as_deref().filter(|u| u.starts_with("https://") || u.starts_with("http://"));
        let host = host.ok_or_else(|| Error::Config { message: "the Salesforce grant has no instance URL".into() })?;
        Ok(format!("{}/services/data/{}", host.trim_end_matches('/'), self.api_version))
    }

    fn check_backoff(&self, account: AccountId) -> Result<()> {
        let now = self.clock.now();
        let map = self.backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(&account) {
            Some(until) if *until > now => {
                let wait = (*until - now).to_std().unwrap_or(LIMIT_BACKOFF);
                Err(provider(
                    true,
                    Some("REQUEST_LIMIT_EXCEEDED".into()),
                    "the daily API limit is nearly used".into(),
                    Some(wait),
                ))
            }
            _ => Ok(()),
        }
    }

    fn note_usage(&self, account: AccountId, res: &Response) {
        if let Some((used, limit)) = api_usage(res)
            && limit > 0
            && used.saturating_mul(100) >= limit.saturating_mul(LIMIT_PERCENT)
        {
            let until = self.clock.now() + chrono::Duration::from_std(LIMIT_BACKOFF).unwrap_or_default();
            self.backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(account, until);
            tracing::warn!(used, limit, "Salesforce API usage is near the daily limit; backing off");
        }
    }

    /// Sends `request(base, token)` for `account`, refreshing the token once on 401.
    async fn call(
        &self,
        account: AccountId,
        what: &str,
        request: impl Fn(&str, &AccessToken) -> RequestBuilder + Send + Sync,
    ) -> Result<Response> {
        self.check_backoff(account)?;
        let mut token = self.tokens.access_token(account, OAuthProvider::Salesforce).await?;
        for attempt in 0..2 {
            let base = self.api_base(&token)?;
            let res = request(&base, &token)
                .bearer_auth(&token.token)
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| transport(PROVIDER, what, &e))?;
            self.note_usage(account, &res);
            if res.status() == StatusCode::UNAUTHORIZED {
                if attempt == 0 {
                    token = self.tokens.refreshed_token(account, OAuthProvider::Salesforce, &token).await?;
                    continue;
                }
                return Err(Error::Config {
                    message: format!("{what}: Salesforce refused the session after a refresh"),
                });
            }
            if res.status().is_success() {
                return Ok(res);
            }
            return Err(self.refusal(account, res, what).await);
        }
        Err(Error::Config { message: format!("{what}: Salesforce refused the session") })
    }

    async fn refusal(&self, account: AccountId, res: Response, what: &str) -> Error {
        let status = res.status();
        let after = retry_after(&res);
        let text = res.text().await.unwrap_or_default();
        let first = serde_json::from_str::<Vec<ApiError>>(&text).ok().and_then(|v| v.into_iter().next());
        let code = first.as_ref().and_then(|e| e.error_code.clone()).map(|c| clip(&c));
        let msg =
            first.as_ref().and_then(|e| e.message.as_deref()).map(clip).unwrap_or_else(|| format!("HTTP {status}"));
        let message = format!("{what}: {msg}");
        if code.as_deref() == Some("REQUEST_LIMIT_EXCEEDED") {
            let wait = after.unwrap_or(LIMIT_BACKOFF);
            let until = self.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default();
            self.backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(account, until);
            return provider(true, code, message, Some(wait));
        }
        match status {
            StatusCode::TOO_MANY_REQUESTS => provider(true, code, message, after),
            s if s.is_server_error() => provider(true, code, message, after),
            StatusCode::NOT_FOUND => Error::not_found("salesforce record"),
            StatusCode::BAD_REQUEST => Error::validation("contact", format!("{} ({})", msg, code.unwrap_or_default())),
            _ => provider(false, code, message, None),
        }
    }

    async fn query(
        &self,
        account: AccountId,
        object: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ExternalChange>> {
        let soql = format!(
            "SELECT Id, FirstName, LastName, Email, Phone, LastModifiedDate FROM {object} \
             WHERE LastModifiedDate > {} ORDER BY LastModifiedDate ASC LIMIT {limit}",
            since.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        let what = "querying changed records";
        let res = self
            .call(account, what, |base, _| {
                let mut url = format!("{base}/query?");
                url.push_str(&url::form_urlencoded::Serializer::new(String::new()).append_pair("q", &soql).finish());
                self.client.request(Method::GET, url)
            })
            .await?;
        let body: Value = res.json().await.map_err(|e| transport(PROVIDER, what, &e))?;
        let records =
            body["records"].as_array().ok_or_else(|| provider(false, None, format!("{what}: no records"), None))?;
        let text = |r: &Value, k: &str| r[k].as_str().map(str::to_owned);
        records
            .iter()
            .map(|r| {
                Ok(ExternalChange {
                    object: object.to_owned(),
                    external_id: text(r, "Id")
                        .ok_or_else(|| provider(false, None, format!("{what}: a record has no Id"), None))?,
                    first_name: text(r, "FirstName"),
                    last_name: text(r, "LastName"),
                    email: text(r, "Email"),
                    phone: text(r, "Phone"),
                    modified_at: r["LastModifiedDate"].as_str().and_then(sf_time).ok_or_else(|| {
                        provider(false, None, format!("{what}: a record has no LastModifiedDate"), None)
                    })?,
                })
            })
            .collect()
    }
}

/// The sObject body for `contact` as `object`.
fn sobject(object: &str, contact: &Contact) -> Value {
    let (first, last) = names(&contact.name);
    let mut body = json!({
        "FirstName": first,
        "LastName": last,
        "Email": contact.email.as_ref().map(|e| e.as_str()),
        "Phone": contact.phone.as_str(),
    });
    if object == "Lead" {
        let company = contact.metadata.get("company").and_then(Value::as_str).unwrap_or("[not provided]");
        body["Company"] = json!(company);
        body["LeadSource"] = json!("WhatsApp");
    }
    body
}

#[async_trait]
impl ExternalCrm for SalesforceCrm {
    fn system(&self) -> &str {
        PROVIDER
    }

    async fn push_contact(
        &self,
        account: AccountId,
        contact: &Contact,
        link: Option<&ExternalLink>,
    ) -> Result<PushedRecord> {
        if let Some(l) = link {
            let body = sobject(&l.object, contact);
            let path = format!("/sobjects/{}/{}", l.object, l.external_id);
            self.call(account, "updating the record", |base, _| {
                self.client.request(Method::PATCH, format!("{base}{path}")).json(&body)
            })
            .await?;
            return Ok(PushedRecord { object: l.object.clone(), external_id: l.external_id.clone(), created: false });
        }
        let object = if contact.lead_stage == LeadStage::Won { "Contact" } else { "Lead" };
        let body = sobject(object, contact);
        let what = "creating the record";
        let res = self
            .call(account, what, |base, _| {
                self.client.request(Method::POST, format!("{base}/sobjects/{object}/")).json(&body)
            })
            .await?;
        let created: Value = res.json().await.map_err(|e| transport(PROVIDER, what, &e))?;
        let id = created["id"].as_str().filter(|id| !id.is_empty());
        let id = id.ok_or_else(|| provider(false, None, format!("{what}: the answer has no id"), None))?;
        Ok(PushedRecord { object: object.to_owned(), external_id: id.to_owned(), created: true })
    }

    async fn changed_since(&self, account: AccountId, since: DateTime<Utc>, limit: u32) -> Result<Vec<ExternalChange>> {
        if !(1..=MAX_PULL).contains(&limit) {
            return Err(Error::validation("limit", format!("must be 1 to {MAX_PULL}")));
        }
        let mut all = self.query(account, "Lead", since, limit).await?;
        all.extend(self.query(account, "Contact", since, limit).await?);
        all.sort_by(|a, b| a.modified_at.cmp(&b.modified_at).then_with(|| a.external_id.cmp(&b.external_id)));
        all.truncate(limit as usize);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times() {
        assert_eq!(names("Ana Maria Souza"), (Some("Ana Maria".into()), "Souza".into()));
        assert_eq!(names("Ana"), (None, "Ana".into()));
        let t = sf_time("2024-05-01T12:00:00.000+0000").expect("parses");
        assert_eq!(t.to_rfc3339(), "2024-05-01T12:00:00+00:00");
        assert!(sf_time("yesterday").is_none());
    }
}
