//! The SendGrid adapter of the [`Mailer`] port, and the verifier of
//! SendGrid's signed event webhook.
//!
//! - **Sends** `POST {base}/v3/mail/send` with `Authorization: Bearer <key>`
//!   and the v3 JSON body: one personalization (`to`, `cc`, `bcc`, each
//!   omitted when empty, as SendGrid requires), `from`, `reply_to`,
//!   `subject`, `content` (`text/plain` first, then `text/html`),
//!   `attachments` (base64 `content`, `type`, `filename`, `disposition`)
//!   and `custom_args` (crm's account and contact ids, echoed back in
//!   delivery events). SendGrid answers `202 Accepted` with the message id
//!   in `X-Message-Id`.
//! - **Errors**: SendGrid's `{"errors":[{"message","field"}]}` reasons are
//!   kept (clipped); 401/403 → [`Error::Config`]; 429 → transient with the
//!   wait from `Retry-After` or `X-RateLimit-Reset`; 5xx and timeouts →
//!   transient; 400/413 and other 4xx → permanent.
//! - **Event webhook**: [`EventWebhookVerifier`] checks
//!   `X-Twilio-Email-Event-Webhook-Signature` (base64 DER ECDSA P-256
//!   signature over SHA-256 of the `X-Twilio-Email-Event-Webhook-Timestamp`
//!   value followed by the raw body) with the public key SendGrid shows
//!   for the account (base64 SubjectPublicKeyInfo), refuses stale
//!   timestamps, and parses the events into [`MailEvent`]s.

use async_trait::async_trait;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, TimeZone, Utc};
use crm_core::domain::connection::Connection;
use crm_core::ports::connectors::{
    Capability, Connector, ConnectorFactory, Email, Mailbox, Mailer, SentMail, check_email,
};
use crm_core::secrets::Credentials;
use crm_core::{ContactId, Error, EventType, Result};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

use crate::http::{self, DEFAULT_TIMEOUT};

const PROVIDER: &str = "sendgrid";
/// SendGrid's API base URL.
pub const SENDGRID_API: &str = "https://api.sendgrid.com/";
/// The signature header of the event webhook.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Email-Event-Webhook-Signature";
/// The timestamp header of the event webhook.
pub const TIMESTAMP_HEADER: &str = "X-Twilio-Email-Event-Webhook-Timestamp";
/// How far a webhook's timestamp may be from now (default).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// Most events one webhook post may carry.
pub const MAX_WEBHOOK_EVENTS: usize = 1000;

/// Builds a [`SendGrid`].
#[derive(Default)]
pub struct SendGridBuilder {
    base_url: Option<String>,
    api_key: Option<String>,
    from: Option<Mailbox>,
    timeout: Option<Duration>,
    client: Option<reqwest::Client>,
}

impl fmt::Debug for SendGridBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendGridBuilder").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl SendGridBuilder {
    /// The API base URL (default [`SENDGRID_API`]; tests point it at 127.0.0.1).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The API key (required; needs the "Mail Send" permission).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The sender used when an e-mail names none (a verified sender in SendGrid).
    pub fn from(mut self, from: Mailbox) -> Self {
        self.from = Some(from);
        self
    }

    /// Per-request timeout (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The HTTP client (default: a new one).
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// [`Error::Config`] without an API key or with a bad base URL or sender.
    pub fn build(self) -> Result<SendGrid> {
        let api_key = self
            .api_key
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| Error::Config { message: "SendGrid needs an API key".into() })?;
        let base = http::base_url(self.base_url.as_deref().unwrap_or(SENDGRID_API), "the SendGrid base URL")?;
        if let Some(from) = &self.from {
            from.check("from").map_err(|e| Error::Config { message: e.to_string() })?;
        }
        let client = match self.client {
            Some(c) => c,
            None => http::client()?,
        };
        Ok(SendGrid { base, api_key, from: self.from, timeout: self.timeout.unwrap_or(DEFAULT_TIMEOUT), client })
    }
}

/// SendGrid's v3 Mail Send API. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SendGrid {
    base: Url,
    api_key: String,
    from: Option<Mailbox>,
    timeout: Duration,
    client: reqwest::Client,
}

impl fmt::Debug for SendGrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendGrid").field("base", &self.base.as_str()).field("api_key", &"[redacted]").finish()
    }
}

fn mailbox(m: &Mailbox) -> Value {
    match &m.name {
        Some(name) => json!({ "email": m.email, "name": name }),
        None => json!({ "email": m.email }),
    }
}

/// SendGrid's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    field: Option<String>,
}

impl SendGrid {
    /// A builder.
    pub fn builder() -> SendGridBuilder {
        SendGridBuilder::default()
    }

    /// The v3 JSON body of `email` (public so tests and tools can inspect it).
    pub fn body(email: &Email) -> Value {
        let mut personalization = Map::new();
        for (name, list) in [("to", &email.to), ("cc", &email.cc), ("bcc", &email.bcc)] {
            if !list.is_empty() {
                personalization.insert(name.into(), list.iter().map(mailbox).collect());
            }
        }
        let mut content = vec![json!({ "type": "text/plain", "value": email.text })];
        if let Some(html) = &email.html {
            content.push(json!({ "type": "text/html", "value": html }));
        }
        let mut body = json!({
            "personalizations": [Value::Object(personalization)],
            "from": mailbox(&email.from),
            "subject": email.subject,
            "content": content,
        });
        if let Some(r) = &email.reply_to {
            body["reply_to"] = mailbox(r);
        }
        if !email.attachments.is_empty() {
            body["attachments"] = email
                .attachments
                .iter()
                .map(|a| {
                    json!({
                        "content": STANDARD.encode(&a.content),
                        "type": a.content_type,
                        "filename": a.filename,
                        "disposition": "attachment",
                    })
                })
                .collect();
        }
        if !email.custom_args.is_empty() {
            body["custom_args"] = json!(email.custom_args);
        }
        body
    }

    async fn failure(resp: reqwest::Response) -> Error {
        let status = resp.status();
        let wait = http::retry_after(&resp).or_else(|| {
            let reset = resp.headers().get("X-RateLimit-Reset")?.to_str().ok()?.parse::<i64>().ok()?;
            u64::try_from(reset - Utc::now().timestamp()).ok().map(|s| Duration::from_secs(s.max(1)))
        });
        let text = resp.text().await.unwrap_or_default();
        let message = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) if !b.errors.is_empty() => b
                .errors
                .iter()
                .map(|e| match (&e.field, &e.message) {
                    (Some(f), Some(m)) => format!("{f}: {m}"),
                    (None, Some(m)) => m.clone(),
                    (_, None) => "error".into(),
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => format!("SendGrid answered {status}"),
        };
        http::status_error(PROVIDER, status, message, wait)
    }
}

#[async_trait]
impl Mailer for SendGrid {
    fn provider(&self) -> &str {
        PROVIDER
    }

    async fn send(&self, email: &Email) -> Result<SentMail> {
        let mut email = email.clone();
        if email.from.email.is_empty()
            && let Some(from) = &self.from
        {
            email.from = from.clone();
        }
        check_email(&email)?;
        let url = http::join(&self.base, "v3/mail/send")?;
        let req = self.client.post(url).bearer_auth(&self.api_key).json(&Self::body(&email));
        let resp = http::send(PROVIDER, req, self.timeout).await?;
        if !resp.status().is_success() {
            return Err(Self::failure(resp).await);
        }
        let id = resp.headers().get("X-Message-Id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(SentMail { provider_id: id })
    }
}

// ----- the event webhook -----------------------------------------------------------

/// One delivery event SendGrid reported, as crm records it.
#[derive(Debug, Clone, PartialEq)]
pub struct MailEvent {
    /// The crm event type (`email.bounced`, …).
    pub event_type: EventType,
    /// The recipient.
    pub email: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The contact, when the e-mail was sent for one.
    pub contact_id: Option<ContactId>,
    /// The account id the e-mail was sent for (its custom argument).
    pub account_id: Option<String>,
    /// The event's payload for the event log: recipient, provider ids,
    /// reason, URL, bounce type.
    pub data: Value,
}

/// Verifies and parses SendGrid's signed event webhook.
#[derive(Clone)]
pub struct EventWebhookVerifier {
    point: Vec<u8>,
    tolerance: Duration,
}

impl fmt::Debug for EventWebhookVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWebhookVerifier").field("tolerance", &self.tolerance).finish_non_exhaustive()
    }
}

/// The DER prefix of a P-256 SubjectPublicKeyInfo before its 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn refused(why: &str) -> Error {
    Error::validation("signature", why.to_owned())
}

impl EventWebhookVerifier {
    /// A verifier for the public key SendGrid shows (base64 of the DER
    /// SubjectPublicKeyInfo, or of the raw 65-byte uncompressed point).
    /// [`Error::Validation`] on `event_webhook_public_key` otherwise.
    pub fn new(public_key: &str) -> Result<Self> {
        let bad = || Error::validation("event_webhook_public_key", "must be SendGrid's base64 ECDSA P-256 public key");
        let der = STANDARD.decode(public_key.trim()).map_err(|_| bad())?;
        let point = if der.len() == 91 && der.starts_with(&P256_SPKI_PREFIX) {
            der[26..].to_vec()
        } else if der.len() == 65 && der[0] == 0x04 {
            der
        } else {
            return Err(bad());
        };
        Ok(Self { point, tolerance: DEFAULT_TOLERANCE })
    }

    /// How far the timestamp may be from now (default five minutes).
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Checks the signature over `timestamp` + `body` and the timestamp's
    /// age at `now`, then parses the events. [`Error::Validation`] on
    /// `signature` for a missing, malformed or wrong signature or a stale
    /// timestamp; on `body` for a body that is not a JSON array of events.
    pub fn verify(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<MailEvent>> {
        let signature = signature.ok_or_else(|| refused("the signature header is missing"))?;
        let timestamp = timestamp.ok_or_else(|| refused("the timestamp header is missing"))?;
        let secs: i64 = timestamp.trim().parse().map_err(|_| refused("the timestamp is not a number"))?;
        let age = now.timestamp().abs_diff(secs);
        if age > self.tolerance.as_secs() {
            return Err(refused("the timestamp is too far from now"));
        }
        let sig = STANDARD.decode(signature.trim()).map_err(|_| refused("the signature is not base64"))?;
        let mut signed = Vec::with_capacity(timestamp.len() + body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(body);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(&signed, &sig)
            .map_err(|_| refused("the signature does not match"))?;
        parse_events(body)
    }
}

/// SendGrid's event name → crm's event type (`processed` and unknown ones are skipped).
fn event_type(name: &str) -> Option<EventType> {
    Some(match name {
        "delivered" => EventType::EMAIL_DELIVERED,
        "bounce" => EventType::EMAIL_BOUNCED,
        "dropped" => EventType::EMAIL_DROPPED,
        "deferred" => EventType::EMAIL_DEFERRED,
        "open" => EventType::EMAIL_OPENED,
        "click" => EventType::EMAIL_CLICKED,
        "spamreport" => EventType::EMAIL_SPAM_REPORTED,
        "unsubscribe" | "group_unsubscribe" => EventType::EMAIL_UNSUBSCRIBED,
        _ => return None,
    })
}

/// Parses an event webhook body (a JSON array) into the events crm records.
pub fn parse_events(body: &[u8]) -> Result<Vec<MailEvent>> {
    let items: Vec<Value> =
        serde_json::from_slice(body).map_err(|_| Error::validation("body", "must be a JSON array of events"))?;
    if items.len() > MAX_WEBHOOK_EVENTS {
        return Err(Error::validation("body", format!("at most {MAX_WEBHOOK_EVENTS} events")));
    }
    let mut out = Vec::new();
    for item in &items {
        let Some(event_type) = item["event"].as_str().and_then(event_type) else { continue };
        let email = item["email"].as_str().unwrap_or_default().chars().take(254).collect::<String>();
        let at = item["timestamp"].as_i64().and_then(|t| Utc.timestamp_opt(t, 0).single()).unwrap_or_else(Utc::now);
        let contact_id = item["crm_contact_id"].as_str().and_then(|s| s.parse().ok());
        let account_id = item["crm_account_id"].as_str().map(str::to_owned);
        let mut data = Map::new();
        data.insert("provider".into(), PROVIDER.into());
        data.insert("email".into(), email.clone().into());
        data.insert("at".into(), json!(at));
        if let Some(c) = contact_id {
            data.insert("contact_id".into(), json!(c));
        }
        for key in ["sg_event_id", "sg_message_id", "reason", "status", "type", "url", "bounce_classification"] {
            if let Some(v) = item[key].as_str() {
                data.insert(key.into(), http::clip(v).into());
            }
        }
        out.push(MailEvent { event_type, email, at, contact_id, account_id, data: Value::Object(data) });
    }
    Ok(out)
}

// ----- the connector factory ------------------------------------------------------

/// Builds SendGrid mailers from connections: settings `from` (required,
/// the verified sender), `from_name`, `event_webhook_public_key`;
/// credentials `api_key` (required).
#[derive(Debug, Clone)]
pub struct SendGridFactory {
    base_url: String,
    client: Option<reqwest::Client>,
}

impl Default for SendGridFactory {
    fn default() -> Self {
        Self { base_url: SENDGRID_API.into(), client: None }
    }
}

impl SendGridFactory {
    /// A factory for SendGrid at `base_url` (tests: a local mock).
    pub fn new(base_url: impl Into<String>) -> Self {
        Self { base_url: base_url.into(), client: None }
    }

    /// Shares one HTTP client among the built mailers.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The verifier of a connection's event webhook, when its public key is set.
    pub fn verifier(settings: &Value) -> Result<Option<EventWebhookVerifier>> {
        settings["event_webhook_public_key"].as_str().map(EventWebhookVerifier::new).transpose()
    }
}

fn sender(settings: &Value) -> Result<Mailbox> {
    let email = settings["from"].as_str().ok_or_else(|| Error::validation("settings.from", "is required"))?;
    let name = settings["from_name"].as_str().map(str::to_owned);
    let m = Mailbox { email: email.to_owned(), name };
    m.check("settings.from")?;
    Ok(m)
}

#[async_trait]
impl ConnectorFactory for SendGridFactory {
    fn kind(&self) -> &str {
        PROVIDER
    }

    fn capability(&self) -> Capability {
        Capability::Mail
    }

    fn validate(&self, settings: &Value, credentials: Option<&Credentials>) -> Result<()> {
        sender(settings)?;
        Self::verifier(settings)?;
        if let Some(c) = credentials
            && c.get("api_key").is_none_or(|k| k.trim().is_empty())
        {
            return Err(Error::validation("credentials.api_key", "is required"));
        }
        Ok(())
    }

    async fn build(&self, connection: &Connection, credentials: Credentials) -> Result<Connector> {
        let from = sender(&connection.settings)?;
        let key = credentials
            .get("api_key")
            .ok_or_else(|| Error::Config { message: "the SendGrid connection has no API key".into() })?;
        let mut b = SendGrid::builder().base_url(&self.base_url).api_key(key).from(from);
        if let Some(c) = &self.client {
            b = b.client(c.clone());
        }
        Ok(Connector::Mail(Arc::new(b.build()?)))
    }
}
