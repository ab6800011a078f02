//! [`StripeBilling`]: the [`Billing`] port over Stripe's REST API (reqwest).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::fmt;
use std::time::Duration;

use crm_core::domain::billing::{BillingEvent, Subscription};
use crm_core::ports::billing::{Billing, CancelMode, CheckoutMode, CheckoutRequest, HostedSession};
use crm_core::{AccountId, Error, Result};

use crate::error::{PROVIDER, StripeError, map_error};
use crate::form::Form;
use crate::objects::{self, ACCOUNT_METADATA};
use crate::signature::{self, DEFAULT_TOLERANCE};

/// Stripe's API.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";

/// The API version crm sends (`Stripe-Version`) and reads objects in.
pub const API_VERSION: &str = "2025-03-31.basil";

/// Longest `Retry-After` crm waits for inside one call; a longer one is
/// returned to the caller as [`Error::RateLimited`] (a worker reschedules).
const MAX_INLINE_WAIT: Duration = Duration::from_secs(10);

/// Builds a [`StripeBilling`].
#[derive(Clone, Default)]
pub struct StripeBillingBuilder {
    secret_key: Option<String>,
    webhook_secrets: Vec<String>,
    base_url: Option<String>,
    tolerance: Option<Duration>,
    max_retries: Option<u32>,
    retry_base: Option<Duration>,
    timeout: Option<Duration>,
    client: Option<reqwest::Client>,
}

impl fmt::Debug for StripeBillingBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeBillingBuilder")
            .field("secret_key", &self.secret_key.as_ref().map(|_| "[redacted]"))
            .field("webhook_secrets", &self.webhook_secrets.len())
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl StripeBillingBuilder {
    /// The secret (`sk_…`) or restricted (`rk_…`) API key. Required.
    pub fn secret_key(mut self, key: impl Into<String>) -> Self {
        self.secret_key = Some(key.into());
        self
    }

    /// Adds a webhook signing secret (`whsec_…`); add the old and the new
    /// one while rotating.
    pub fn webhook_secret(mut self, secret: impl Into<String>) -> Self {
        self.webhook_secrets.push(secret.into());
        self
    }

    /// Where the API is (default [`DEFAULT_BASE_URL`]; tests point it at a local mock).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// How far a signature's timestamp may be from now (default 300 s).
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = Some(tolerance);
        self
    }

    /// Retries after a 429, a 5xx or a connection failure (default 2).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// The first retry's delay, doubled each retry, at most 5 s (default 500 ms).
    pub fn retry_base(mut self, d: Duration) -> Self {
        self.retry_base = Some(d);
        self
    }

    /// The timeout of each request (default 20 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// An HTTP client to share (its own timeout applies besides [`Self::timeout`]).
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The adapter. [`Error::Config`] when the key is missing or not a
    /// Stripe secret key, a webhook secret is empty, or the base URL is not http(s).
    pub fn build(self) -> Result<StripeBilling> {
        let key =
            self.secret_key.ok_or_else(|| Error::Config { message: "the Stripe secret key is missing".into() })?;
        if !(key.starts_with("sk_") || key.starts_with("rk_")) || key.len() < 8 || key.contains(char::is_whitespace) {
            return Err(Error::Config { message: "the Stripe secret key must be an sk_… or rk_… key".into() });
        }
        if self.webhook_secrets.iter().any(|s| s.trim().is_empty()) {
            return Err(Error::Config { message: "a Stripe webhook secret is empty".into() });
        }
        let base_url = self.base_url.unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()).trim_end_matches('/').to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(Error::Config { message: "the Stripe base URL must be http(s)".into() });
        }
        let timeout = self.timeout.unwrap_or(Duration::from_secs(20));
        let client = match self.client {
            Some(c) => c,
            None => reqwest::Client::builder()
                .user_agent(concat!("crm-billing/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| Error::Config { message: format!("cannot build the HTTP client: {e}") })?,
        };
        Ok(StripeBilling {
            client,
            key,
            webhook_secrets: self.webhook_secrets,
            base_url,
            tolerance: self.tolerance.unwrap_or(DEFAULT_TOLERANCE),
            max_retries: self.max_retries.unwrap_or(2),
            retry_base: self.retry_base.unwrap_or(Duration::from_millis(500)),
            timeout,
        })
    }
}

/// The [`Billing`] port over Stripe.
///
/// Every mutating call sends the caller's `Idempotency-Key` (the same on
/// each retry); 429, 5xx and connection failures are retried with
/// exponential backoff and jitter, honouring `Retry-After` and
/// `Stripe-Should-Retry`; errors map as in [`crate::error`]. Keys never
/// appear in `Debug`, logs or errors.
///
/// ```
/// let stripe = crm_billing::StripeBilling::builder()
///     .secret_key("sk_test_123456")
///     .webhook_secret("whsec_abc")
///     .base_url("http://127.0.0.1:12111")
///     .build()?;
/// assert!(!format!("{stripe:?}").contains("sk_test"));
/// # Ok::<(), crm_core::Error>(())
/// ```
#[derive(Clone)]
pub struct StripeBilling {
    client: reqwest::Client,
    key: String,
    webhook_secrets: Vec<String>,
    base_url: String,
    tolerance: Duration,
    max_retries: u32,
    retry_base: Duration,
    timeout: Duration,
}

impl fmt::Debug for StripeBilling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeBilling")
            .field("base_url", &self.base_url)
            .field("webhook_secrets", &self.webhook_secrets.len())
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

/// Ids put into URL paths: Stripe's are `prefix_` plus letters and digits.
fn check_id(field: &'static str, id: &str) -> Result<()> {
    if (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(Error::validation(field, "must be a Stripe id (letters, digits and _)"))
    }
}

fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let spread =
        if getrandom::fill(&mut b).is_ok() { f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) } else { 0.5 };
    d.mul_f64(0.75 + spread * 0.5)
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

impl StripeBilling {
    /// A builder.
    pub fn builder() -> StripeBillingBuilder {
        StripeBillingBuilder::default()
    }

    /// How many webhook secrets are configured.
    pub fn webhook_secret_count(&self) -> usize {
        self.webhook_secrets.len()
    }

    fn backoff(&self, retry: u32) -> Duration {
        let d = self.retry_base.saturating_mul(2u32.saturating_pow(retry.min(16)));
        jitter(d.min(Duration::from_secs(5)))
    }

    /// One API call with retries. `path_and_query` starts with `/v1/`.
    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        form: Option<&Form>,
        key: Option<&str>,
    ) -> Result<Value> {
        let url = format!("{}{}", self.base_url, path_and_query);
        let body = form.map(Form::encode);
        let mut retry = 0u32;
        loop {
            let mut req = self
                .client
                .request(method.clone(), &url)
                .bearer_auth(&self.key)
                .header("Stripe-Version", API_VERSION)
                .timeout(self.timeout);
            if let Some(k) = key {
                req = req.header("Idempotency-Key", k);
            }
            if let Some(b) = &body {
                req = req.header("Content-Type", "application/x-www-form-urlencoded").body(b.clone());
            }
            let (error, should_retry, wait) = match req.send().await {
                Err(e) => {
                    let message = if e.is_timeout() {
                        format!("Stripe did not answer within {} s", self.timeout.as_secs_f64())
                    } else {
                        "could not reach Stripe".to_owned()
                    };
                    let err = Error::Provider {
                        provider: PROVIDER.into(),
                        transient: true,
                        code: None,
                        message,
                        retry_after: None,
                        source: Some(Box::new(e.without_url())),
                    };
                    (err, true, None)
                }
                Ok(res) => {
                    let status = res.status();
                    let should: Option<bool> = header(&res, "Stripe-Should-Retry").map(|v| v == "true");
                    let retry_after =
                        header(&res, "Retry-After").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
                    let bytes = res.bytes().await.map_err(|e| Error::Provider {
                        provider: PROVIDER.into(),
                        transient: true,
                        code: None,
                        message: "Stripe's answer was cut off".into(),
                        retry_after: None,
                        source: Some(Box::new(e.without_url())),
                    });
                    match bytes {
                        Err(e) => (e, true, None),
                        Ok(bytes) if status.is_success() => {
                            return serde_json::from_slice(&bytes).map_err(|_| Error::Provider {
                                provider: PROVIDER.into(),
                                transient: false,
                                code: None,
                                message: format!(
                                    "Stripe answered HTTP {} with a body that is not JSON",
                                    status.as_u16()
                                ),
                                retry_after: None,
                                source: None,
                            });
                        }
                        Ok(bytes) => {
                            let parsed = StripeError::parse(&bytes);
                            let err = map_error(status.as_u16(), parsed.as_ref(), retry_after);
                            let default = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                            (err, should.unwrap_or(default), retry_after)
                        }
                    }
                }
            };
            let delay = match wait {
                Some(w) if w > MAX_INLINE_WAIT => None,
                Some(w) => Some(w.max(self.backoff(retry))),
                None => Some(self.backoff(retry)),
            };
            match delay {
                Some(d) if should_retry && retry < self.max_retries => {
                    tracing::debug!(retry, delay_ms = d.as_millis() as u64, error = %error, "stripe: retrying");
                    tokio::time::sleep(d).await;
                    retry += 1;
                }
                _ => return Err(error),
            }
        }
    }

    fn subscription_of(&self, v: &Value, account: AccountId) -> Result<Subscription> {
        // Another account's subscription is as good as missing.
        if objects::account_in_metadata(v).is_some_and(|a| a != account) {
            return Err(Error::not_found("subscription"));
        }
        objects::subscription(v, account, "api", Utc::now())
    }
}

fn session(v: &Value) -> Result<HostedSession> {
    match (v["id"].as_str(), v["url"].as_str()) {
        (Some(id), Some(url)) => Ok(HostedSession { id: id.to_owned(), url: url.to_owned() }),
        _ => Err(Error::Provider {
            provider: PROVIDER.into(),
            transient: false,
            code: None,
            message: "Stripe's session has no id or url".into(),
            retry_after: None,
            source: None,
        }),
    }
}

#[async_trait]
impl Billing for StripeBilling {
    fn provider(&self) -> &str {
        PROVIDER
    }

    async fn ensure_customer(&self, account: AccountId, name: &str, idempotency_key: &str) -> Result<String> {
        let mut q = Form::new();
        q.push("query", format!("metadata['{ACCOUNT_METADATA}']:'{account}'")).push("limit", 1);
        let found = self.call(Method::GET, &format!("/v1/customers/search?{}", q.encode()), None, None).await?;
        if let Some(id) = found["data"][0]["id"].as_str() {
            return Ok(id.to_owned());
        }
        let mut form = Form::new();
        form.push("name", name).push(format!("metadata[{ACCOUNT_METADATA}]"), account);
        let created = self.call(Method::POST, "/v1/customers", Some(&form), Some(idempotency_key)).await?;
        created["id"].as_str().map(str::to_owned).ok_or_else(|| Error::Provider {
            provider: PROVIDER.into(),
            transient: false,
            code: None,
            message: "Stripe's customer has no id".into(),
            retry_after: None,
            source: None,
        })
    }

    async fn create_checkout(
        &self,
        account: AccountId,
        customer: &str,
        request: &CheckoutRequest,
        idempotency_key: &str,
    ) -> Result<HostedSession> {
        check_id("price_id", &request.price_id)?;
        let mut form = Form::new();
        let mode = match request.mode {
            CheckoutMode::Subscription => "subscription",
            CheckoutMode::Payment => "payment",
        };
        form.push("mode", mode)
            .push("customer", customer)
            .push("client_reference_id", account)
            .push("line_items[0][price]", &request.price_id)
            .push("line_items[0][quantity]", request.quantity)
            .list("payment_method_types", &["card", "pix"])
            .push("locale", "pt-BR")
            .push("success_url", &request.success_url)
            .push("cancel_url", &request.cancel_url)
            .push(format!("metadata[{ACCOUNT_METADATA}]"), account);
        match request.mode {
            CheckoutMode::Subscription => {
                form.push(format!("subscription_data[metadata][{ACCOUNT_METADATA}]"), account)
            }
            CheckoutMode::Payment => form.push(format!("payment_intent_data[metadata][{ACCOUNT_METADATA}]"), account),
        };
        session(&self.call(Method::POST, "/v1/checkout/sessions", Some(&form), Some(idempotency_key)).await?)
    }

    async fn create_portal(&self, customer: &str, return_url: &str, idempotency_key: &str) -> Result<HostedSession> {
        let mut form = Form::new();
        form.push("customer", customer).push("return_url", return_url);
        session(&self.call(Method::POST, "/v1/billing_portal/sessions", Some(&form), Some(idempotency_key)).await?)
    }

    async fn cancel_subscription(
        &self,
        account: AccountId,
        subscription: &str,
        mode: CancelMode,
        idempotency_key: &str,
    ) -> Result<Subscription> {
        check_id("subscription", subscription)?;
        // Read first: another account's subscription is never touched.
        let current = self.call(Method::GET, &format!("/v1/subscriptions/{subscription}"), None, None).await?;
        self.subscription_of(&current, account)?;
        let path = format!("/v1/subscriptions/{subscription}");
        let v = match mode {
            CancelMode::AtPeriodEnd => {
                let mut form = Form::new();
                form.push("cancel_at_period_end", "true");
                self.call(Method::POST, &path, Some(&form), Some(idempotency_key)).await?
            }
            CancelMode::Immediately => self.call(Method::DELETE, &path, None, Some(idempotency_key)).await?,
        };
        self.subscription_of(&v, account)
    }

    async fn get_subscription(&self, account: AccountId, subscription: &str) -> Result<Subscription> {
        check_id("subscription", subscription)?;
        let v = self.call(Method::GET, &format!("/v1/subscriptions/{subscription}"), None, None).await?;
        self.subscription_of(&v, account)
    }

    fn verify_webhook(&self, payload: &[u8], signature: Option<&str>, now: DateTime<Utc>) -> Result<BillingEvent> {
        signature::verify(payload, signature, &self.webhook_secrets, self.tolerance, now)?;
        objects::event(payload, now)
    }
}
