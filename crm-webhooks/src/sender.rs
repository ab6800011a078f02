//! One HTTP attempt: the request, the guard, the answer classified.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_core::domain::webhook::{MAX_RESPONSE_EXCERPT, clip};
use crm_core::{Error, Result};

use crate::schedule::parse_retry_after;
use crate::ssrf::{AddressPolicy, GuardedResolver, check_url};

/// What one attempt got.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    /// The answer's status; `None` when there was none.
    pub status: Option<u16>,
    /// Time to the answer (or the failure).
    pub latency: Duration,
    /// The start of the answer's body.
    pub excerpt: Option<String>,
    /// What went wrong, for the log (no secrets); `None` on a 2xx.
    pub error: Option<String>,
    /// The answer's `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl AttemptResult {
    /// A 2xx answer.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// `410 Gone`: the receiver asks to stop.
    pub fn gone(&self) -> bool {
        self.status == Some(410)
    }

    fn refused(error: String, started: Instant) -> Self {
        Self { status: None, latency: started.elapsed(), excerpt: None, error: Some(error), retry_after: None }
    }
}

/// Sends signed requests: one reqwest client (keep-alive connections
/// reused), no redirects followed, no proxy, names resolved through the
/// SSRF guard, a timeout per attempt.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

impl Sender {
    /// A sender with `timeout` per attempt under `policy`, resolving names
    /// with the system resolver.
    pub fn new(timeout: Duration, policy: AddressPolicy) -> Result<Self> {
        let policy = Arc::new(policy);
        let resolver = GuardedResolver::new(policy.clone());
        Self::build(timeout, policy, resolver)
    }

    /// A sender with `timeout` per attempt under `policy`, resolving names
    /// with `lookup` (a custom DNS client); the policy applies to every
    /// address it answers, at every attempt.
    pub fn with_lookup(
        timeout: Duration,
        policy: AddressPolicy,
        lookup: Arc<dyn reqwest::dns::Resolve>,
    ) -> Result<Self> {
        let policy = Arc::new(policy);
        let resolver = GuardedResolver::with_lookup(policy.clone(), lookup);
        Self::build(timeout, policy, resolver)
    }

    fn build(timeout: Duration, policy: Arc<AddressPolicy>, resolver: GuardedResolver) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(32)
            .user_agent(concat!("crm-webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(resolver))
            .build()
            .map_err(|e| Error::Config { message: format!("cannot build the webhook HTTP client: {e}") })?;
        Ok(Self { client, policy })
    }

    /// The policy it enforces.
    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// POSTs `body` as JSON to `url` with `headers`; never fails: every
    /// problem is an [`AttemptResult`] with an error.
    pub async fn post(&self, url: &str, headers: &BTreeMap<String, String>, body: Vec<u8>) -> AttemptResult {
        let started = Instant::now();
        let parsed = match check_url(url, &self.policy) {
            Ok(u) => u,
            Err(e) => return AttemptResult::refused(refusal_text(&e), started),
        };
        let mut request = self.client.post(parsed).header(http::header::CONTENT_TYPE, "application/json").body(body);
        for (k, v) in headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return AttemptResult::refused(describe(&e), started),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let mut excerpt = Vec::new();
        // Read at most the excerpt; the rest is never buffered.
        while excerpt.len() < MAX_RESPONSE_EXCERPT {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    excerpt.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE_EXCERPT - excerpt.len())])
                }
                Ok(None) => break,
                // The status decides; a body that breaks off only shortens the excerpt.
                Err(_) => break,
            }
        }
        let latency = started.elapsed();
        let text = String::from_utf8_lossy(&excerpt);
        let excerpt = (!text.is_empty()).then(|| clip(&text, MAX_RESPONSE_EXCERPT).to_owned());
        let error = if (200..300).contains(&status) {
            None
        } else if (300..400).contains(&status) {
            Some(format!("HTTP {status}: redirects are not followed"))
        } else {
            Some(format!("HTTP {status}"))
        };
        AttemptResult { status: Some(status), latency, excerpt, error, retry_after }
    }
}

fn refusal_text(e: &Error) -> String {
    match e {
        Error::Validation { reason, .. } => format!("refused: url {reason}"),
        other => other.to_string(),
    }
}

/// A reqwest error in words, with its causes (no URL query, no headers).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    let text = if causes.is_empty() { kind.to_owned() } else { format!("{kind}: {}", causes.join(": ")) };
    clip(&text, crm_core::domain::webhook::MAX_ATTEMPT_ERROR).to_owned()
}
