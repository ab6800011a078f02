//! Outbound webhooks: the endpoints an account registers, one delivery per
//! (event, endpoint), and the attempts log of each delivery.
//!
//! The HTTP side (signing, the SSRF guard, the workers) lives in the
//! `crm-webhooks` crate; these are the stored shapes its store port keeps.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::secrets::SealedSecret;
use crate::{AccountId, Error, EventFilter, EventId, EventType, PageRequest, Result};
use crate::{WebhookAttemptId, WebhookDeliveryId, WebhookEndpointId};

/// Most endpoints one account may have.
pub const MAX_ENDPOINTS_PER_ACCOUNT: usize = 50;
/// Longest endpoint URL, in bytes.
pub const MAX_ENDPOINT_URL_LEN: usize = 2048;
/// Most custom headers per endpoint.
pub const MAX_ENDPOINT_HEADERS: usize = 20;
/// Longest description, in characters.
pub const MAX_ENDPOINT_DESCRIPTION: usize = 500;
/// Longest response excerpt kept per attempt, in bytes.
pub const MAX_RESPONSE_EXCERPT: usize = 1024;
/// Longest error kept per attempt or delivery, in characters.
pub const MAX_ATTEMPT_ERROR: usize = 500;

/// Headers a custom header may not set: the signature headers, and what the
/// HTTP client itself owns.
const RESERVED_HEADERS: &[&str] =
    &["webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length", "host"];

/// An account's outbound webhook endpoint.
///
/// The signing secret is sealed with the service's keyring (context
/// [`WebhookEndpoint::secret_context`]); it is shown once, when created or
/// rotated, and never again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    /// Id.
    pub id: WebhookEndpointId,
    /// Owner.
    pub account_id: AccountId,
    /// Where events are POSTed (`http` or `https`).
    pub url: String,
    /// Free text.
    pub description: String,
    /// Which events it receives (exact names and `prefix.*` patterns, or every event).
    pub event_types: EventFilter,
    /// Whether deliveries are made (a disabled endpoint gets no new deliveries).
    pub enabled: bool,
    /// Why delivery disabled it (`410 Gone`, failing since …); `None` when
    /// enabled or disabled by hand.
    pub disabled_reason: Option<String>,
    /// The signing secret (`whsec_…`), sealed.
    pub secret: SealedSecret,
    /// The secret before the last rotation, still signing until `previous_secret_expires_at`.
    pub previous_secret: Option<SealedSecret>,
    /// When the previous secret stops signing.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Extra headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// At most this many requests per second to this endpoint; `None`: no limit.
    pub rate_limit_per_second: Option<u32>,
    /// Since when every attempt has failed; `None` after a success.
    pub failing_since: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Optimistic concurrency version.
    pub version: i64,
}

impl WebhookEndpoint {
    /// The associated data its secrets are sealed with, so a sealed secret
    /// opens only on its own endpoint.
    pub fn secret_context(account: AccountId, id: WebhookEndpointId) -> Vec<u8> {
        format!("webhook:{account}:{id}").into_bytes()
    }

    /// What the API shows (no secret).
    pub fn view(&self) -> EndpointView {
        EndpointView {
            id: self.id,
            url: self.url.clone(),
            description: self.description.clone(),
            event_types: self.event_types.types().map(<[String]>::to_vec),
            enabled: self.enabled,
            disabled_reason: self.disabled_reason.clone(),
            headers: self.headers.clone(),
            rate_limit_per_second: self.rate_limit_per_second,
            failing_since: self.failing_since,
            rotating_until: self.previous_secret.as_ref().and(self.previous_secret_expires_at),
            secret_key_id: self.secret.key_id().to_owned(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        }
    }
}

/// An endpoint as the API shows it: everything but its secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointView {
    /// Id.
    pub id: WebhookEndpointId,
    /// Where events are POSTed.
    pub url: String,
    /// Free text.
    pub description: String,
    /// Event names and `prefix.*` patterns; `null`: every event.
    pub event_types: Option<Vec<String>>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why delivery disabled it.
    pub disabled_reason: Option<String>,
    /// Extra headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// Requests per second at most.
    pub rate_limit_per_second: Option<u32>,
    /// Since when every attempt has failed.
    pub failing_since: Option<DateTime<Utc>>,
    /// While a rotation overlaps: until when the previous secret also signs.
    pub rotating_until: Option<DateTime<Utc>>,
    /// The keyring key the secret is sealed with.
    pub secret_key_id: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Version (send it back with an update).
    pub version: i64,
}

/// Checks an endpoint URL's shape: `http://` or `https://`, at most
/// [`MAX_ENDPOINT_URL_LEN`] bytes, no whitespace or control characters.
/// (Where it points is the SSRF guard's business, at every attempt.)
pub fn check_endpoint_url(url: &str) -> Result<()> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(Error::validation("url", "must be an http:// or https:// URL"));
    }
    if url.len() > MAX_ENDPOINT_URL_LEN {
        return Err(Error::validation("url", format!("at most {MAX_ENDPOINT_URL_LEN} bytes")));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::validation("url", "must not contain spaces or control characters"));
    }
    Ok(())
}

/// Checks custom headers: at most [`MAX_ENDPOINT_HEADERS`], names are HTTP
/// tokens (not the signature headers, `content-type`, `content-length` or
/// `host`), values are visible ASCII and spaces, each at most 1,000 bytes.
pub fn check_endpoint_headers(headers: &BTreeMap<String, String>) -> Result<()> {
    if headers.len() > MAX_ENDPOINT_HEADERS {
        return Err(Error::validation("headers", format!("at most {MAX_ENDPOINT_HEADERS} headers")));
    }
    for (name, value) in headers {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || name.len() > 100 || !name.bytes().all(token) {
            return Err(Error::validation("headers", "a header name must be 1 to 100 token characters"));
        }
        if RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Err(Error::validation("headers", format!("`{name}` is set by crm and cannot be overridden")));
        }
        if value.len() > 1000 || !value.bytes().all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic()) {
            return Err(Error::validation("headers", "a header value must be at most 1000 visible ASCII characters"));
        }
    }
    Ok(())
}

/// Checks an endpoint's description and rate limit.
pub fn check_endpoint_fields(description: &str, rate_limit_per_second: Option<u32>) -> Result<()> {
    if description.chars().count() > MAX_ENDPOINT_DESCRIPTION || description.chars().any(|c| c == '\0') {
        return Err(Error::validation("description", format!("at most {MAX_ENDPOINT_DESCRIPTION} characters")));
    }
    if let Some(r) = rate_limit_per_second
        && !(1..=10_000).contains(&r)
    {
        return Err(Error::validation("rate_limit_per_second", "must be between 1 and 10000"));
    }
    Ok(())
}

/// Checks every field of an endpoint the way every store does before storing it.
pub fn check_endpoint(endpoint: &WebhookEndpoint) -> Result<()> {
    check_endpoint_url(&endpoint.url)?;
    check_endpoint_headers(&endpoint.headers)?;
    check_endpoint_fields(&endpoint.description, endpoint.rate_limit_per_second)
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or running it).
    Pending,
    /// A 2xx answer was received.
    Succeeded,
    /// Gave up (attempts exhausted, endpoint gone or disabled); replayable.
    Failed,
}

impl DeliveryStatus {
    /// `pending` / `succeeded` / `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Parses [`DeliveryStatus::as_str`].
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "succeeded" => Ok(DeliveryStatus::Succeeded),
            "failed" => Ok(DeliveryStatus::Failed),
            _ => Err(Error::validation("status", "must be pending, succeeded or failed")),
        }
    }
}

/// The parts of an endpoint that change without a new
/// [`WebhookEndpoint::version`] (failure tracking), read with every attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointState {
    /// The endpoint's version: a cached copy of the same version is current
    /// in everything but the two fields below.
    pub version: i64,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// When the current run of failures started.
    pub failing_since: Option<DateTime<Utc>>,
}

/// What one attempt of a delivery needs before it is made, read together:
/// the delivery, its endpoint's state (`None` when the endpoint is gone),
/// and whether FIFO per contact makes it wait.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptContext {
    /// The delivery as stored.
    pub delivery: WebhookDelivery,
    /// Its endpoint's state; `None` when the endpoint was deleted.
    pub endpoint: Option<EndpointState>,
    /// Whether the endpoint has a pending delivery with the same ordering
    /// key for an earlier event (always `false` without an ordering key).
    pub earlier_pending: bool,
}

/// One event to one endpoint. Unique per (endpoint, event): the event's id
/// is the `webhook-id` header of every attempt, so receivers deduplicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    /// Id.
    pub id: WebhookDeliveryId,
    /// Owner.
    pub account_id: AccountId,
    /// The endpoint.
    pub endpoint_id: WebhookEndpointId,
    /// The event (its id is the `webhook-id`).
    pub event_id: EventId,
    /// The event's type.
    pub event_type: EventType,
    /// Deliveries with the same key reach the endpoint in event order (the contact's id).
    pub ordering_key: Option<String>,
    /// Where it is.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The last answer's HTTP status.
    pub last_status_code: Option<u16>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// One HTTP request of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookAttempt {
    /// Id.
    pub id: WebhookAttemptId,
    /// Owner.
    pub account_id: AccountId,
    /// The delivery.
    pub delivery_id: WebhookDeliveryId,
    /// The endpoint.
    pub endpoint_id: WebhookEndpointId,
    /// When the request started.
    pub at: DateTime<Utc>,
    /// The answer's status; `None` when there was no answer.
    pub status_code: Option<u16>,
    /// Time to the answer (or the failure), in milliseconds.
    pub latency_ms: u32,
    /// The start of the answer's body (at most [`MAX_RESPONSE_EXCERPT`] bytes).
    pub response_excerpt: Option<String>,
    /// What went wrong (no secrets).
    pub error: Option<String>,
    /// Whether the answer was a 2xx.
    pub succeeded: bool,
}

/// How an attempt leaves its delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryProgress {
    /// The delivery's new status.
    pub status: DeliveryStatus,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Which deliveries to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Only this endpoint's.
    pub endpoint_id: Option<WebhookEndpointId>,
    /// Only this event's.
    pub event_id: Option<EventId>,
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// The page (in id order).
    pub page: PageRequest,
}

/// Clips `text` to at most `max` bytes on a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_headers_and_fields_are_checked() {
        assert!(check_endpoint_url("https://example.com/hook").is_ok());
        assert!(check_endpoint_url("HTTP://example.com").is_ok());
        assert!(check_endpoint_url("ftp://example.com").is_err());
        assert!(check_endpoint_url("https://exa mple.com").is_err());
        assert!(check_endpoint_url(&format!("https://e.com/{}", "a".repeat(MAX_ENDPOINT_URL_LEN))).is_err());
        let mut h = BTreeMap::new();
        h.insert("X-Team".to_owned(), "crm".to_owned());
        assert!(check_endpoint_headers(&h).is_ok());
        h.insert("Webhook-Signature".to_owned(), "v1,forged".to_owned());
        assert!(check_endpoint_headers(&h).is_err());
        let mut h = BTreeMap::new();
        h.insert("X-Bad".to_owned(), "a\r\nInjected: 1".to_owned());
        assert!(check_endpoint_headers(&h).is_err());
        assert!(check_endpoint_fields("ok", Some(0)).is_err());
        assert!(check_endpoint_fields(&"d".repeat(501), None).is_err());
        assert_eq!(clip("ação", 2), "a");
        assert_eq!(DeliveryStatus::parse("failed").ok(), Some(DeliveryStatus::Failed));
    }
}
