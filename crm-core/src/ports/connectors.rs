//! The connector ports: [`Mailer`] (e-mail), [`Notifier`] (team chat such as
//! Slack) and [`Analytics`] (GA4-style event collection), with the values
//! they carry, and [`ConnectorFactory`], which builds them from an
//! account's [`Connection`](crate::domain::connection::Connection).
//!
//! Nothing here sends from a request: callers schedule the durable jobs of
//! [`crate::workers::connectors`], whose worker builds the account's
//! connector and calls these ports with retries.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use crate::domain::connection::Connection;
use crate::domain::template::{Variables, render_strict};
use crate::secrets::Credentials;
use crate::{ContactId, Error, MediaId, Result};

// ----- e-mail ----------------------------------------------------------------------

/// Most recipients (to, cc and bcc together) of one e-mail.
pub const MAX_RECIPIENTS: usize = 50;
/// Most characters of a rendered subject.
pub const MAX_SUBJECT_CHARS: usize = 998;
/// Most characters of a rendered text or HTML body.
pub const MAX_BODY_CHARS: usize = 512 * 1024;
/// Most attachments of one e-mail.
pub const MAX_ATTACHMENTS: usize = 10;
/// Most bytes of all attachments of one e-mail together.
pub const MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;
/// Most custom arguments (echoed back by the provider's events).
pub const MAX_CUSTOM_ARGS: usize = 10;

/// An e-mail address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Mailbox {
    /// The address, `local@domain`.
    #[cfg_attr(feature = "openapi", schema(min_length = 3, max_length = 254))]
    pub email: String,
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 200))]
    pub name: Option<String>,
}

impl Mailbox {
    /// A mailbox without a display name.
    pub fn new(email: impl Into<String>) -> Self {
        Self { email: email.into(), name: None }
    }

    /// Checks it: an address of 3–254 characters with one `@` between a
    /// local part and a dotted-or-not domain, no spaces, quotes, angle
    /// brackets, commas or control characters (they would break headers);
    /// a name of at most 200 characters without control characters or `"`.
    /// [`Error::Validation`] on `field` otherwise.
    pub fn check(&self, field: &str) -> Result<()> {
        let e = &self.email;
        let bad_char = |c: char| c.is_whitespace() || c.is_control() || "<>\",;()[]\\".contains(c);
        let ok = (3..=254).contains(&e.chars().count())
            && !e.chars().any(bad_char)
            && e.split_once('@').is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
        if !ok {
            return Err(Error::validation(field.to_owned(), "must be an e-mail address like name@example.com"));
        }
        if let Some(name) = &self.name
            && (name.chars().count() > 200 || name.chars().any(|c| c.is_control() || c == '"'))
        {
            return Err(Error::validation(
                field.to_owned(),
                "name must be at most 200 characters without control characters or quotes",
            ));
        }
        Ok(())
    }
}

/// A file attached to an e-mail.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Its file name.
    pub filename: String,
    /// Its MIME type.
    pub content_type: String,
    /// Its bytes.
    pub content: Vec<u8>,
}

impl Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("bytes", &self.content.len())
            .finish()
    }
}

/// A rendered e-mail, ready for a [`Mailer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The sender (the connection's default when the draft names none).
    pub from: Mailbox,
    /// Recipients.
    pub to: Vec<Mailbox>,
    /// Copied recipients.
    pub cc: Vec<Mailbox>,
    /// Blind-copied recipients.
    pub bcc: Vec<Mailbox>,
    /// Where replies go.
    pub reply_to: Option<Mailbox>,
    /// The subject.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body, when there is one.
    pub html: Option<String>,
    /// Attached files.
    pub attachments: Vec<Attachment>,
    /// Values the provider echoes back in its delivery events (crm puts the
    /// account and contact ids here so events find their contact).
    pub custom_args: BTreeMap<String, String>,
}

/// An e-mail to render and send: `{{var}}` templates for the subject and
/// bodies, the recipients, and attachments named by media id. This is the
/// payload of the [`MAIL_SEND_JOB`](crate::workers::connectors::MAIL_SEND_JOB) job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MailDraft {
    /// The sender; the connection's `from` setting when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Mailbox>,
    /// Recipients (at least one among to, cc and bcc; at most [`MAX_RECIPIENTS`] together).
    #[serde(default)]
    pub to: Vec<Mailbox>,
    /// Copied recipients.
    #[serde(default)]
    pub cc: Vec<Mailbox>,
    /// Blind-copied recipients.
    #[serde(default)]
    pub bcc: Vec<Mailbox>,
    /// Where replies go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Mailbox>,
    /// Subject template.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 998))]
    pub subject: String,
    /// Plain-text body template.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 524288))]
    pub text: String,
    /// HTML body template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 524288))]
    pub html: Option<String>,
    /// Values of the templates' `{{var}}` placeholders (each must have one).
    #[serde(default)]
    pub variables: Variables,
    /// Media ids of files to attach (at most [`MAX_ATTACHMENTS`]).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, max_items = 10))]
    pub attachments: Vec<MediaId>,
    /// The contact it is about: its id travels with the e-mail so the
    /// provider's delivery events are recorded on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub contact_id: Option<ContactId>,
}

impl MailDraft {
    /// Checks the addresses and counts ([`Error::Validation`] naming the
    /// field) and renders subject, text and HTML with `variables` (strictly:
    /// a placeholder without a value is refused, as is a result over the
    /// bounds). The result has no sender (empty address) when the draft
    /// names none, and no attachments: the caller adds them.
    pub fn render(&self) -> Result<Email> {
        let recipients = self.to.len() + self.cc.len() + self.bcc.len();
        if recipients == 0 {
            return Err(Error::validation("to", "at least one recipient is needed"));
        }
        if recipients > MAX_RECIPIENTS {
            return Err(Error::validation("to", format!("at most {MAX_RECIPIENTS} recipients in to, cc and bcc")));
        }
        if self.attachments.len() > MAX_ATTACHMENTS {
            return Err(Error::validation("attachments", format!("at most {MAX_ATTACHMENTS}")));
        }
        for (field, list) in [("to", &self.to), ("cc", &self.cc), ("bcc", &self.bcc)] {
            for m in list {
                m.check(field)?;
            }
        }
        if let Some(m) = &self.from {
            m.check("from")?;
        }
        if let Some(m) = &self.reply_to {
            m.check("reply_to")?;
        }
        if self.subject.trim().is_empty() {
            return Err(Error::validation("subject", "must not be empty"));
        }
        let subject = render_strict(&self.subject, &self.variables, MAX_SUBJECT_CHARS)?;
        if subject.chars().any(char::is_control) {
            return Err(Error::validation("subject", "must not contain control characters (line breaks)"));
        }
        let text = render_strict(&self.text, &self.variables, MAX_BODY_CHARS)?;
        if text.trim().is_empty() {
            return Err(Error::validation("text", "must not be empty"));
        }
        let html = self.html.as_deref().map(|h| render_strict(h, &self.variables, MAX_BODY_CHARS)).transpose()?;
        let mut custom_args = BTreeMap::new();
        if let Some(c) = self.contact_id {
            custom_args.insert("crm_contact_id".to_owned(), c.to_string());
        }
        Ok(Email {
            from: self.from.clone().unwrap_or_else(|| Mailbox::new("")),
            to: self.to.clone(),
            cc: self.cc.clone(),
            bcc: self.bcc.clone(),
            reply_to: self.reply_to.clone(),
            subject,
            text,
            html,
            attachments: Vec::new(),
            custom_args,
        })
    }
}

/// What a mailer reports after the provider accepted an e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SentMail {
    /// The provider's message id, when it gives one (`X-Message-Id`).
    pub provider_id: Option<String>,
}

/// Sends e-mail.
///
/// Contract (checked by `crm_core::testing::connectors::mailer`):
/// - `send` hands one rendered [`Email`] to the provider and returns once
///   the provider accepted it.
/// - An e-mail without a sender, without recipients, or with a recipient
///   that [`Mailbox::check`] refuses is [`Error::Validation`] and sends nothing.
/// - Provider failures are [`Error::Provider`]: `transient` for 429, 5xx,
///   timeouts and lost connections (with `retry_after` when the provider
///   said), permanent for other refusals; refused credentials are
///   [`Error::Config`]. Credentials never appear in errors or logs.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crm_core::ports::connectors::{MailDraft, Mailbox, Mailer};
/// use crm_core::memory::RecordingMailer;
/// let mailer = RecordingMailer::new();
/// let draft = MailDraft {
///     from: Some(Mailbox::new("loja@example.com")),
///     to: vec![Mailbox::new("ana@example.com")],
///     subject: "Olá {{name}}".into(),
///     text: "Seu pedido saiu.".into(),
///     variables: [("name".to_owned(), "Ana".to_owned())].into(),
///     ..Default::default()
/// };
/// mailer.send(&draft.render()?).await?;
/// assert_eq!(mailer.sent()[0].subject, "Olá Ana");
/// # Ok::<(), crm_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait Mailer: Send + Sync + Debug + 'static {
    /// The provider's name, e.g. `"sendgrid"`.
    fn provider(&self) -> &str;

    /// Sends one e-mail.
    async fn send(&self, email: &Email) -> Result<SentMail>;
}

/// The checks every mailer makes before it sends (the port's, not an adapter's).
pub fn check_email(email: &Email) -> Result<()> {
    email.from.check("from")?;
    if email.subject.trim().is_empty() || email.subject.chars().any(char::is_control) {
        return Err(Error::validation("subject", "must be a line of text"));
    }
    if email.to.len() + email.cc.len() + email.bcc.len() == 0 {
        return Err(Error::validation("to", "at least one recipient is needed"));
    }
    for (field, list) in [("to", &email.to), ("cc", &email.cc), ("bcc", &email.bcc)] {
        for m in list {
            m.check(field)?;
        }
    }
    if let Some(m) = &email.reply_to {
        m.check("reply_to")?;
    }
    let bytes: usize = email.attachments.iter().map(|a| a.content.len()).sum();
    if email.attachments.len() > MAX_ATTACHMENTS || bytes > MAX_ATTACHMENT_BYTES {
        return Err(Error::validation(
            "attachments",
            format!("at most {MAX_ATTACHMENTS} files of {MAX_ATTACHMENT_BYTES} bytes together"),
        ));
    }
    if email.custom_args.len() > MAX_CUSTOM_ARGS {
        return Err(Error::validation("custom_args", format!("at most {MAX_CUSTOM_ARGS}")));
    }
    Ok(())
}

// ----- notifications ---------------------------------------------------------------

/// Most characters of a notification's text.
pub const MAX_NOTIFICATION_CHARS: usize = 3000;
/// Most Block Kit blocks of a notification (Slack's limit).
pub const MAX_BLOCKS: usize = 50;

/// A message for a team channel: a plain-text fallback and Block Kit blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Notification {
    /// The text shown in notifications and where blocks cannot be shown.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 3000))]
    pub text: String,
    /// Block Kit blocks (at most [`MAX_BLOCKS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 50))]
    pub blocks: Vec<Value>,
    /// The channel (`#sales` or an id) for bot-token connections; the
    /// connection's default when absent. Incoming webhooks post to their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 80))]
    pub channel: Option<String>,
}

fn section(markdown: String) -> Value {
    serde_json::json!({ "type": "section", "text": { "type": "mrkdwn", "text": markdown } })
}

/// Escapes `&`, `<` and `>` the way Slack's mrkdwn wants.
pub fn escape_mrkdwn(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Notification {
    /// A plain notification: its text in one section block.
    pub fn plain(text: &str) -> Self {
        Self { text: text.to_owned(), blocks: vec![section(escape_mrkdwn(text))], channel: None }
    }

    /// A hot lead: `contact` (name or phone) crossed the lead-score
    /// `threshold` with `score`; `link` opens it in the dashboard.
    pub fn hot_lead(contact: &str, score: i64, threshold: i64, link: Option<&str>) -> Self {
        let who = escape_mrkdwn(contact);
        let mut blocks = vec![
            serde_json::json!({ "type": "header", "text": { "type": "plain_text", "text": "Hot lead", "emoji": true } }),
            serde_json::json!({ "type": "section", "fields": [
                { "type": "mrkdwn", "text": format!("*Contact*\n{who}") },
                { "type": "mrkdwn", "text": format!("*Lead score*\n{score} (threshold {threshold})") },
            ] }),
        ];
        if let Some(link) = link {
            blocks.push(serde_json::json!({ "type": "actions", "elements": [
                { "type": "button", "text": { "type": "plain_text", "text": "Open contact" }, "url": link },
            ] }));
        }
        Self { text: format!("Hot lead: {contact} reached score {score}"), blocks, channel: None }
    }

    /// A failed payment of `amount_minor` (minor units) in `currency`, with
    /// the provider's `reason`.
    pub fn payment_failed(customer: &str, amount_minor: i64, currency: &str, reason: &str) -> Self {
        let amount = format!("{} {}.{:02}", currency.to_uppercase(), amount_minor / 100, (amount_minor % 100).abs());
        let blocks = vec![
            serde_json::json!({ "type": "header", "text": { "type": "plain_text", "text": "Payment failed", "emoji": true } }),
            serde_json::json!({ "type": "section", "fields": [
                { "type": "mrkdwn", "text": format!("*Customer*\n{}", escape_mrkdwn(customer)) },
                { "type": "mrkdwn", "text": format!("*Amount*\n{amount}") },
            ] }),
            section(format!("*Reason*\n{}", escape_mrkdwn(reason))),
        ];
        Self { text: format!("Payment failed: {customer}, {amount}"), blocks, channel: None }
    }

    /// Checks its bounds: text 1..=[`MAX_NOTIFICATION_CHARS`] characters,
    /// at most [`MAX_BLOCKS`] blocks, each a JSON object with a `type`, a
    /// channel of at most 80 characters. [`Error::Validation`] otherwise.
    pub fn check(&self) -> Result<()> {
        let n = self.text.chars().count();
        if n == 0 || n > MAX_NOTIFICATION_CHARS || self.text.trim().is_empty() {
            return Err(Error::validation("text", format!("must be 1 to {MAX_NOTIFICATION_CHARS} characters")));
        }
        if self.blocks.len() > MAX_BLOCKS || self.blocks.iter().any(|b| !b["type"].is_string()) {
            return Err(Error::validation(
                "blocks",
                format!("at most {MAX_BLOCKS} Block Kit blocks, each an object with a type"),
            ));
        }
        if let Some(c) = &self.channel
            && (c.is_empty() || c.chars().count() > 80 || c.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(Error::validation("channel", "must be 1 to 80 characters without spaces"));
        }
        Ok(())
    }
}

/// Posts notifications to a team's chat.
///
/// Contract (checked by `crm_core::testing::connectors::notifier`):
/// - `notify` posts one [`Notification`]; one that [`Notification::check`]
///   refuses is [`Error::Validation`] and posts nothing.
/// - A provider's rate limit is [`Error::Provider`] with `transient` and the
///   `retry_after` it gave (Slack's 429 `Retry-After`), so the job runs again
///   then; 5xx and timeouts are transient too; a refused token or webhook
///   URL is [`Error::Config`]; other refusals are permanent.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crm_core::ports::connectors::{Notification, Notifier};
/// use crm_core::memory::RecordingNotifier;
/// let slack = RecordingNotifier::new();
/// slack.notify(&Notification::hot_lead("Ana", 80, 70, None)).await?;
/// assert!(slack.notified()[0].text.contains("Ana"));
/// # Ok::<(), crm_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait Notifier: Send + Sync + Debug + 'static {
    /// The provider's name, e.g. `"slack"`.
    fn provider(&self) -> &str;

    /// Posts a notification.
    async fn notify(&self, notification: &Notification) -> Result<()>;
}

// ----- analytics -------------------------------------------------------------------

/// Most events per collection request (GA4 Measurement Protocol's limit).
pub const MAX_ANALYTICS_BATCH: usize = 25;
/// Most events one `track` call (one job) may carry; adapters send them in
/// batches of [`MAX_ANALYTICS_BATCH`].
pub const MAX_ANALYTICS_EVENTS: usize = 100;
/// Most parameters of one event (GA4's limit).
pub const MAX_EVENT_PARAMS: usize = 25;

/// Who the events are about: GA4's `client_id` (required) and `user_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnalyticsUser {
    /// The pseudonymous client id.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub client_id: String,
    /// The signed-in user's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    pub user_id: Option<String>,
}

/// One analytics event: a name and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnalyticsEvent {
    /// The name: a letter, then letters, digits and `_`, at most 40; no
    /// `google_`, `ga_` or `firebase_` prefix.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 40, pattern = "^[A-Za-z][A-Za-z0-9_]{0,39}$"))]
    pub name: String,
    /// Its parameters (at most [`MAX_EVENT_PARAMS`]).
    #[serde(default)]
    pub params: Map<String, Value>,
}

impl AnalyticsEvent {
    /// A custom event. [`Error::Validation`] as [`AnalyticsEvent::check`].
    pub fn custom(name: &str, params: Map<String, Value>) -> Result<Self> {
        let e = Self { name: name.to_owned(), params };
        e.check()?;
        Ok(e)
    }

    /// A conversion worth `value_minor` minor units of `currency` (ISO
    /// 4217, e.g. `BRL`) with its `transaction_id` (GA4 deduplicates on it).
    pub fn conversion(name: &str, value_minor: i64, currency: &str, transaction_id: &str) -> Result<Self> {
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Error::validation("currency", "must be an ISO 4217 code like BRL"));
        }
        if transaction_id.is_empty() || transaction_id.chars().count() > 100 {
            return Err(Error::validation("transaction_id", "must be 1 to 100 characters"));
        }
        let mut params = Map::new();
        params.insert("currency".into(), currency.into());
        params.insert("value".into(), serde_json::json!(value_minor as f64 / 100.0));
        params.insert("transaction_id".into(), transaction_id.into());
        Self::custom(name, params)
    }

    /// Checks the name (see the field) and at most [`MAX_EVENT_PARAMS`]
    /// parameters with names of at most 40 characters.
    pub fn check(&self) -> Result<()> {
        let n = &self.name;
        let ok = (1..=40).contains(&n.len())
            && n.as_bytes()[0].is_ascii_alphabetic()
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !["google_", "ga_", "firebase_"].iter().any(|p| n.to_ascii_lowercase().starts_with(p));
        if !ok {
            return Err(Error::validation(
                "name",
                "must start with a letter, hold letters, digits and _, at most 40, without a reserved prefix",
            ));
        }
        if self.params.len() > MAX_EVENT_PARAMS || self.params.keys().any(|k| k.is_empty() || k.len() > 40) {
            return Err(Error::validation(
                "params",
                format!("at most {MAX_EVENT_PARAMS}, names of 1 to 40 characters"),
            ));
        }
        Ok(())
    }
}

/// Checks a `track` call's arguments: a client id of 1–256 characters,
/// 1..=[`MAX_ANALYTICS_EVENTS`] events, each [`AnalyticsEvent::check`]ed.
pub fn check_track(user: &AnalyticsUser, events: &[AnalyticsEvent]) -> Result<()> {
    if user.client_id.is_empty() || user.client_id.chars().count() > 256 {
        return Err(Error::validation("client_id", "must be 1 to 256 characters"));
    }
    if user.user_id.as_ref().is_some_and(|u| u.is_empty() || u.chars().count() > 256) {
        return Err(Error::validation("user_id", "must be 1 to 256 characters"));
    }
    if events.is_empty() || events.len() > MAX_ANALYTICS_EVENTS {
        return Err(Error::validation("events", format!("must be 1 to {MAX_ANALYTICS_EVENTS} events")));
    }
    events.iter().try_for_each(AnalyticsEvent::check)
}

/// Collects analytics events server-side.
///
/// Contract (checked by `crm_core::testing::connectors::analytics`):
/// - `track` records `events` for `user`, sending at most
///   [`MAX_ANALYTICS_BATCH`] per request; arguments [`check_track`]
///   refuses are [`Error::Validation`] and send nothing.
/// - In a debug mode an adapter validates with the provider instead of
///   recording, and surfaces the provider's validation messages as
///   [`Error::Validation`] (field = the provider's field path).
/// - Failures as for [`Mailer`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crm_core::ports::connectors::{Analytics, AnalyticsEvent, AnalyticsUser};
/// use crm_core::memory::RecordingAnalytics;
/// let ga = RecordingAnalytics::new();
/// let user = AnalyticsUser { client_id: "555.1".into(), user_id: None };
/// ga.track(&user, &[AnalyticsEvent::conversion("purchase", 12990, "BRL", "T-1")?]).await?;
/// assert_eq!(ga.tracked()[0].1[0].params["value"], 129.9);
/// # Ok::<(), crm_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait Analytics: Send + Sync + Debug + 'static {
    /// The provider's name, e.g. `"ga4"`.
    fn provider(&self) -> &str;

    /// Records events.
    async fn track(&self, user: &AnalyticsUser, events: &[AnalyticsEvent]) -> Result<()>;
}

// ----- factories -------------------------------------------------------------------

/// What a connection can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Sends e-mail ([`Mailer`]).
    Mail,
    /// Posts notifications ([`Notifier`]).
    Notify,
    /// Collects analytics events ([`Analytics`]).
    Analytics,
    /// Bills the account through its own provider account
    /// ([`Billing`](crate::Billing), e.g. the account's own Stripe keys).
    Billing,
}

/// A built connector, by capability.
#[derive(Debug, Clone)]
pub enum Connector {
    /// A mailer.
    Mail(Arc<dyn Mailer>),
    /// A notifier.
    Notify(Arc<dyn Notifier>),
    /// An analytics collector.
    Analytics(Arc<dyn Analytics>),
    /// A billing provider with the account's own keys.
    Billing(Arc<dyn crate::Billing>),
}

/// Builds the connector of one provider kind from an account's connection.
/// Adapter crates implement it and register it with the
/// [`ConnectorRegistry`](crate::connections::ConnectorRegistry), so crm-core
/// never names a provider.
///
/// Contract:
/// - `kind` is stable and matches [`ConnectionKind::parse`](crate::domain::connection::ConnectionKind::parse).
/// - `validate` refuses, with [`Error::Validation`] naming the field, settings or
///   credentials the provider cannot work with; it does no I/O.
/// - `build` does no I/O; `test` sends the provider a harmless test (a
///   test e-mail to `to`, a test message, a debug-mode event).
#[async_trait]
pub trait ConnectorFactory: Send + Sync + Debug + 'static {
    /// The provider kind, e.g. `"sendgrid"`.
    fn kind(&self) -> &str;

    /// What its connectors do.
    fn capability(&self) -> Capability;

    /// Checks settings (a JSON object) and, when being set, credentials.
    fn validate(&self, settings: &Value, credentials: Option<&Credentials>) -> Result<()>;

    /// Builds the connector.
    async fn build(&self, connection: &Connection, credentials: Credentials) -> Result<Connector>;

    /// Sends a harmless test through a built connector (`to`: where a test
    /// e-mail goes). The default sends the capability's natural test.
    async fn test(&self, connector: &Connector, to: Option<&Mailbox>) -> Result<()> {
        match connector {
            Connector::Mail(m) => {
                let to = to.ok_or_else(|| Error::validation("to", "a test e-mail needs a recipient"))?;
                let draft = MailDraft {
                    to: vec![to.clone()],
                    subject: "crm test e-mail".into(),
                    text: "This e-mail confirms that crm can send through this connection.".into(),
                    ..MailDraft::default()
                };
                let mut email = draft.render()?;
                email.from = Mailbox::new("");
                m.send(&email).await.map(drop)
            }
            Connector::Notify(n) => n.notify(&Notification::plain("crm: this connection works.")).await,
            Connector::Analytics(a) => {
                let user = AnalyticsUser { client_id: "crm-test.1".into(), user_id: None };
                a.track(&user, &[AnalyticsEvent::custom("crm_connection_test", Map::new())?]).await
            }
            // A read of a subscription that cannot exist: the provider
            // answers "not found" to a working key and "unauthorized" to a bad one.
            Connector::Billing(b) => {
                match b
                    .get_subscription(crate::AccountId::from_uuid(uuid::Uuid::nil()), "sub_crm_connection_test")
                    .await
                {
                    Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }
}
