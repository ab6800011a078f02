//! Sending: the asynchronous pipeline (queue → dispatcher worker) and the
//! immediate send, both through a channel's governed messenger.
//!
//! `queue_message` validates, stores the message as `queued` with its
//! `message.queued` event in one transaction and returns; the
//! [`Dispatcher`] (an outbox consumer of `message.queued`) sends it through
//! the channel's governor and records `sent` or `failed`. Transient provider
//! errors retry with backoff that honours the provider's retry-after, up to
//! [`CrmBuilder::max_send_attempts`](super::CrmBuilder::max_send_attempts)
//! and [`CrmBuilder::send_deadline`](super::CrmBuilder::send_deadline);
//! permanent errors fail the message at once with the provider's code.
//!
//! **The one at-least-once window.** When a provider accepts a message and
//! the process dies before `sent` is recorded, the outbox item's lease
//! expires and another worker claims it. Before sending again, the
//! dispatcher asks the messenger whether it already accepted crm's message
//! id ([`Messenger::find_receipt`]); providers that take crm's id as an
//! idempotency key de-duplicate by themselves. A provider that can do
//! neither may deliver that one message twice.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{ContactSummary, Crm, clean_error, contact_summary, describe_window};
use crate::workers::{EventWorker, Outcome, WorkerOptions};
use crate::{
    AccountId, Capabilities, Channel, ChannelId, Contact, ContactId, Error, Event, EventFilter, EventType, Fallback,
    FallbackSwap, FallbackTemplate, GovernedMessenger, MAX_TEXT_LEN, Message, MessageAnnotation, MessageContent,
    MessageError, MessageId, MessageKind, MessageStatus, Messenger, OutboundMessage, Paced, ReplyTo, Result,
    SendReceipt, StatusUpdate, Template, Throttle, Variables, Verdict,
};

/// `template` rendered for `contact` (whose `name`, `first_name`, `phone` and
/// `email` fill placeholders `variables` leaves unset), at most
/// [`MAX_TEXT_LEN`] characters, as message content carrying the variables used.
pub(super) fn render_for(template: Template, contact: &Contact, variables: Variables) -> Result<MessageContent> {
    let mut vars = super::contact_variables(contact);
    vars.extend(variables);
    let rendered = template.render(&vars, MAX_TEXT_LEN)?;
    let used: Variables =
        vars.into_iter().filter(|(k, _)| template.variables.contains(k) || crate::is_component_variable(k)).collect();
    Ok(MessageContent::Template { name: template.name, language: template.language, variables: used, rendered })
}

/// The outbox consumer name of the dispatcher.
pub const DISPATCH_CONSUMER: &str = "dispatch";

const DAY: Duration = Duration::from_secs(24 * 3600);

/// How long a dispatcher leaves an immediate send to its caller.
const IMMEDIATE_HANDOVER: Duration = Duration::from_secs(300);

/// How long a queued message waits before the next try while its channel is
/// not connected ([`Error::NotConnected`]): an eighth of how long it has
/// waited so far, between 2 s and 1 min, so a short reconnect costs seconds
/// and a long outage a try a minute. It is a deferral (no attempt counted);
/// the dispatch deadline still fails a message that waited too long.
fn reconnect_wait(waited: Duration) -> Duration {
    (waited / 8).clamp(Duration::from_secs(2), Duration::from_secs(60))
}

/// A message to send: to whom, what, through which channel, and the
/// caller's reference that makes a retried request idempotent.
#[derive(Debug, Clone, PartialEq)]
pub struct SendRequest {
    /// The recipient.
    pub contact_id: ContactId,
    /// What to send.
    pub content: MessageContent,
    /// The channel; `None` uses the account's default channel.
    pub channel_id: Option<ChannelId>,
    /// An idempotency key: a second request with the same reference returns
    /// the first message instead of sending another.
    pub client_reference: Option<String>,
    /// The message this one replies to (quotes).
    pub reply_to: Option<Quote>,
    /// The template to send instead when the content is free-form and the
    /// channel's customer-service window is closed (overrides the channel's
    /// `fallback_template` setting).
    pub fallback_template: Option<FallbackTemplate>,
}

/// A message to quote in a reply: crm's id, or the provider's id (`wamid.…`)
/// of a message crm recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quote {
    /// crm's message id.
    Message(MessageId),
    /// The provider's message id.
    ProviderId(String),
}

impl Quote {
    /// A crm message id (a UUID) when `s` parses as one, else a provider id.
    pub fn parse(s: &str) -> Self {
        match s.parse::<MessageId>() {
            Ok(id) => Quote::Message(id),
            Err(_) => Quote::ProviderId(s.to_owned()),
        }
    }
}

impl SendRequest {
    /// `content` to `contact_id` through the default channel.
    pub fn new(contact_id: ContactId, content: MessageContent) -> Self {
        Self { contact_id, content, channel_id: None, client_reference: None, reply_to: None, fallback_template: None }
    }

    /// Quoting this message.
    pub fn reply_to(mut self, quote: Quote) -> Self {
        self.reply_to = Some(quote);
        self
    }

    /// With this fallback template for a closed customer-service window.
    pub fn fallback(mut self, template: FallbackTemplate) -> Self {
        self.fallback_template = Some(template);
        self
    }

    /// Through this channel.
    pub fn via(mut self, channel: ChannelId) -> Self {
        self.channel_id = Some(channel);
        self
    }

    /// With this idempotency key.
    pub fn reference(mut self, reference: impl Into<String>) -> Self {
        self.client_reference = Some(reference.into());
        self
    }
}

/// Whether free-form messages can reach a contact through one channel now
/// (the provider's customer-service window, e.g. WhatsApp Cloud's 24 hours
/// since the contact last wrote).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelWindow {
    /// The channel.
    pub channel_id: ChannelId,
    /// Its kind.
    pub kind: crate::ChannelKind,
    /// The window's length in seconds; `None` when the provider has none
    /// (free-form messages are always allowed).
    pub window_secs: Option<u64>,
    /// When the contact last wrote on this channel (messages recorded
    /// without a channel count for every channel).
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// The template a closed window falls back to (the channel's
    /// `fallback_template` setting), if any.
    pub fallback_template: Option<FallbackTemplate>,
    /// Whether a free-form message may be sent now.
    pub open: bool,
    /// When the window closes (absent when it is closed or there is none).
    pub closes_at: Option<DateTime<Utc>>,
}

/// A contact's customer-service windows, one per channel of the account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactWindows {
    /// The contact.
    pub contact_id: ContactId,
    /// When the contact last wrote (on any channel).
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// Per enabled channel, in id order; each channel's window starts at the
    /// contact's last message on that channel.
    pub channels: Vec<ChannelWindow>,
}

/// Whether a window of `window` opened by a message at `last_inbound` is
/// open at `now`, and when it closes (`None` when closed, or open for good:
/// a window too large to add to a time never closes).
fn window_state(
    last_inbound: Option<DateTime<Utc>>,
    window: Duration,
    now: DateTime<Utc>,
) -> (bool, Option<DateTime<Utc>>) {
    let Some(last) = last_inbound else { return (false, None) };
    match chrono::Duration::from_std(window).ok().and_then(|w| last.checked_add_signed(w)) {
        Some(closes) if now < closes => (true, Some(closes)),
        Some(_) => (false, None),
        None => (true, None),
    }
}

/// Checks a template message's variables against the stored template of
/// that name and language (for a provider template, the one synced from the
/// provider): every body placeholder needs a value and no other body name
/// may be given; when the template knows its header and button parameters
/// ([`Template::parameters`], set by a sync), every required one needs a
/// value and no other `header.*`, `button.*` or `quick_reply.*` name may be
/// given. So the provider's parameter mismatch (WhatsApp 132000) is refused
/// before the call, naming the missing and the extra names. Without known
/// parameters, component names are left to the provider.
pub fn check_template_variables(template: &crate::Template, variables: &Variables) -> Result<()> {
    use std::collections::BTreeSet;
    let other_component = |n: &str| crate::is_component_variable(n);
    let given: BTreeSet<&str> = variables.keys().map(String::as_str).filter(|n| !other_component(n)).collect();
    let wanted: BTreeSet<&str> = template.variables.iter().map(String::as_str).collect();
    let mut missing: Vec<&str> = wanted.difference(&given).copied().collect();
    let mut extra: Vec<&str> = given.difference(&wanted).copied().collect();
    if let Some(parameters) = &template.parameters {
        let declared: BTreeSet<&str> = parameters.iter().map(|p| p.name.as_str()).collect();
        missing.extend(
            parameters.iter().filter(|p| p.required && !variables.contains_key(&p.name)).map(|p| p.name.as_str()),
        );
        extra.extend(variables.keys().map(String::as_str).filter(|n| other_component(n) && !declared.contains(n)));
    }
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let mut reason = format!("template {} ({}) ", template.name, template.language);
    if !missing.is_empty() {
        reason.push_str(&format!("needs {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        reason.push_str(if missing.is_empty() { "has no " } else { "; it has no " });
        reason.push_str(&extra.join(", "));
    }
    Err(Error::validation("content.variables", reason))
}

/// Whether a stored message is what `req` asks for: the same contact,
/// channel and reply, and the same content — for a template, the same
/// name, language and text with every given variable stored as given (the
/// stored message also carries the contact's own variables), or the
/// original content of a fallback.
fn same_request(stored: &Message, req: &SendRequest) -> bool {
    let content = match (&stored.content, &req.content) {
        _ if stored.fallback.as_ref().is_some_and(|f| f.original == req.content) => true,
        (
            MessageContent::Template { name, language, variables, rendered },
            MessageContent::Template { name: n, language: l, variables: v, rendered: r },
        ) => name == n && language == l && rendered == r && v.iter().all(|(k, x)| variables.get(k) == Some(x)),
        (a, b) => a == b,
    };
    let reply = match (&req.reply_to, &stored.reply_to) {
        (None, None) => true,
        (Some(Quote::Message(id)), Some(r)) => r.message_id == Some(*id),
        (Some(Quote::ProviderId(p)), Some(r)) => r.provider_message_id.as_deref() == Some(p.as_str()),
        _ => false,
    };
    stored.contact_id == req.contact_id
        && content
        && reply
        && (req.channel_id.is_none() || req.channel_id == stored.channel_id)
}

/// What queueing did.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    /// The message (for a replay, the first one, as it is now).
    pub message: Message,
    /// Whether an earlier request with the same reference created it.
    pub replayed: bool,
}

/// Where a message goes out.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant, reason = "one short-lived value per send; boxing the channel gains nothing")]
pub(crate) enum Route {
    /// A channel, through its governor (boxed: a channel is large).
    Channel(Box<Channel>, Arc<GovernedMessenger>),
    /// The service's fallback messenger (no channel).
    Fallback(Arc<dyn Messenger>),
}

impl Route {
    fn messenger(&self) -> &dyn Messenger {
        match self {
            Route::Channel(_, m) => m.inner().as_ref(),
            Route::Fallback(m) => m.as_ref(),
        }
    }

    fn channel_id(&self) -> Option<ChannelId> {
        match self {
            Route::Channel(c, _) => Some(c.id),
            Route::Fallback(_) => None,
        }
    }
}

/// `message.queued`'s payload: the message and its contact, whether the
/// recipient is new to the channel, and when the dispatcher may send it.
#[derive(Serialize)]
struct QueuedPayload<'a> {
    message: &'a Message,
    contact: ContactSummary<'a>,
    new_recipient: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    dispatch_after: Option<DateTime<Utc>>,
    /// The request's fallback template, for a window that closes while the
    /// message waits (the channel's own is read at dispatch).
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback_template: Option<&'a FallbackTemplate>,
}

struct Prepared {
    contact: Contact,
    route: Route,
    message: Message,
    new_recipient: bool,
    /// The request's fallback template, when the message did not fall back already.
    fallback_template: Option<FallbackTemplate>,
}

fn unusable_receipt(provider: &str) -> Error {
    Error::Provider {
        provider: provider.to_owned().into(),
        transient: false,
        code: None,
        message: "the provider answered with an unusable message id".into(),
        retry_after: None,
        source: None,
    }
}

fn check_receipt(provider: &str, receipt: SendReceipt) -> Result<String> {
    let id = receipt.provider_message_id;
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return Err(unusable_receipt(provider));
    }
    Ok(id)
}

fn error_of(e: &Error) -> MessageError {
    clean_error(match e {
        Error::Provider { code, message, .. } => MessageError { code: code.clone(), reason: message.clone() },
        other => MessageError { code: Some(other.kind().into()), reason: other.to_string() },
    })
}

fn describe(d: Duration) -> String {
    describe_window(d)
}

/// Why a free-form message may not go: the window is closed and no fallback
/// template is configured.
fn window_closed(window: Duration) -> Error {
    Error::validation(
        "content.type",
        format!(
            "outside the customer-service window: the contact has not written on this channel in the last {}; \
             send a template, or name one as fallback_template (in the request or the channel's settings)",
            describe(window)
        ),
    )
}

impl Crm {
    /// Where an account's message goes: the given channel, else the
    /// account's default channel, else the fallback messenger.
    pub(crate) async fn route(&self, account: AccountId, channel: Option<ChannelId>) -> Result<Route> {
        let channel = match channel {
            Some(id) => Some(self.store.get_channel(account, id).await?),
            None => self.default_channel(account).await?,
        };
        match (channel, &self.fallback) {
            (Some(c), _) => {
                if !c.enabled {
                    return Err(Error::validation("channel_id", format!("channel {} is disabled", c.id)));
                }
                let m = self.channels.messenger(&c).await?;
                Ok(Route::Channel(Box::new(c), m))
            }
            (None, Some(m)) => Ok(Route::Fallback(m.clone())),
            (None, None) => Err(Error::validation(
                "channel_id",
                "the account has no channel to send through; create one (POST /api/v1/channels)",
            )),
        }
    }

    /// The account's default channel, from the default-channel cache when
    /// it holds a fresh answer
    /// ([`CrmBuilder::default_channel_cache`](super::CrmBuilder::default_channel_cache)).
    async fn default_channel(&self, account: AccountId) -> Result<Option<Channel>> {
        let now = self.now();
        if let Some(c) = self.default_channels.get(account, now) {
            return Ok(c);
        }
        let generation = self.default_channels.generation();
        let channel = self.store.default_channel(account).await?;
        self.default_channels.put(account, &channel, now, generation);
        Ok(channel)
    }

    /// Checks that `message` may go to `contact` through a messenger with
    /// `caps`: opt-in, supported kind, and the customer-service window
    /// (free-form messages only while it is open, i.e. within the window of
    /// `last_inbound`, the contact's last message on this channel; templates always).
    pub(crate) fn check_sendable(
        &self,
        contact: &Contact,
        message: &Message,
        caps: &Capabilities,
        provider: &str,
        last_inbound: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if contact.opt_in.status == crate::OptInStatus::OptedOut {
            return Err(Error::validation("contact.opt_in", "the contact opted out of messages"));
        }
        let kind = message.kind();
        if !caps.kinds.contains(&kind) {
            return Err(Error::validation(
                "content.type",
                format!("{provider} cannot send {} messages", kind.as_str()),
            ));
        }
        if let Some(window) = caps.customer_service_window
            && kind != MessageKind::Template
            && !window_state(last_inbound, window, now).0
        {
            return Err(window_closed(window));
        }
        Ok(())
    }

    /// When the contact last wrote on `channel` (messages recorded without a
    /// channel count for every channel); for the fallback messenger, on any channel.
    async fn last_inbound_on(
        &self,
        account: AccountId,
        contact: &Contact,
        channel: Option<ChannelId>,
    ) -> Result<Option<DateTime<Utc>>> {
        let Some(channel) = channel else { return Ok(contact.last_inbound_at) };
        let times = self.store.last_inbound_by_channel(account, contact.id).await?;
        Ok(times.into_iter().filter(|(c, _)| c.is_none() || *c == Some(channel)).map(|(_, t)| t).max())
    }

    /// The contact's last inbound time on the route's channel, read only
    /// when the window decides whether `kind` may go (a provider with a
    /// window, a free-form kind).
    async fn window_start(
        &self,
        account: AccountId,
        contact: &Contact,
        route: &Route,
        caps: &Capabilities,
        kind: MessageKind,
    ) -> Result<Option<DateTime<Utc>>> {
        if caps.customer_service_window.is_none() || kind == MessageKind::Template {
            return Ok(contact.last_inbound_at);
        }
        self.last_inbound_on(account, contact, route.channel_id()).await
    }

    async fn prepare(&self, account: AccountId, req: &SendRequest) -> Result<Prepared> {
        if let Some(f) = &req.fallback_template {
            f.validate("fallback_template")?;
        }
        let contact = self.store.get_contact(account, req.contact_id).await?;
        let mut content = self.template_content(account, &contact, req.content.clone()).await?;
        let route = self.route(account, req.channel_id).await?;
        let now = self.now();
        let messenger = route.messenger();
        let caps = messenger.capabilities();
        let mut last_inbound = self.window_start(account, &contact, &route, &caps, content.kind()).await?;
        let mut fallback = None;
        if let Some(window) = caps.customer_service_window
            && content.kind() != MessageKind::Template
            && caps.kinds.contains(&content.kind())
            && !window_state(last_inbound, window, now).0
        {
            let configured = match &route {
                Route::Channel(c, _) => c.fallback_template()?,
                Route::Fallback(_) => None,
            };
            let Some(template) = req.fallback_template.clone().or(configured) else {
                return Err(window_closed(window));
            };
            let reason = format!(
                "outside the customer-service window: the contact has not written in the last {}",
                describe(window)
            );
            let swap = self.fall_back(account, &contact, template, req.content.clone(), reason).await?;
            content = swap.content;
            fallback = Some(swap.fallback);
            last_inbound = contact.last_inbound_at;
        }
        let mut message = Message::outbound(account, contact.id, content, now)?;
        message.channel_id = route.channel_id();
        message.fallback = fallback;
        if let Some(q) = &req.reply_to {
            message.reply_to = Some(self.quoted(account, &contact, q).await?);
        }
        if let Some(r) = &req.client_reference {
            message = message.with_client_reference(r.clone())?;
        }
        self.check_sendable(&contact, &message, &caps, messenger.provider(), last_inbound, now)?;
        let new_recipient = contact.last_outbound_at.is_none_or(|t| (now - t).to_std().is_ok_and(|age| age >= DAY));
        let fallback_template = if message.fallback.is_none() { req.fallback_template.clone() } else { None };
        Ok(Prepared { contact, route, message, new_recipient, fallback_template })
    }

    /// `original` rendered as fallback `template` for `contact` instead,
    /// with the record of why. [`Error::Validation`] on `fallback_template`
    /// when no such template is stored, or on its variables.
    async fn fall_back(
        &self,
        account: AccountId,
        contact: &Contact,
        template: FallbackTemplate,
        original: MessageContent,
        reason: String,
    ) -> Result<FallbackSwap> {
        let stored = match self.stored_template(account, &template.name, &template.language).await {
            Err(Error::NotFound { .. }) => {
                return Err(Error::validation(
                    "fallback_template",
                    format!("no template {} ({}) is stored", template.name, template.language),
                ));
            }
            other => other?,
        };
        let rendered = render_for(stored, contact, template.variables.clone())?;
        let content = self.template_content(account, contact, rendered).await?;
        let fallback = Fallback { template: template.name, language: template.language, reason, original };
        Ok(FallbackSwap { content, fallback })
    }

    /// The quoted message of a reply: one of the contact's thread that the
    /// provider knows (it has a provider id). [`Error::Validation`] on
    /// `reply_to` otherwise.
    async fn quoted(&self, account: AccountId, contact: &Contact, quote: &Quote) -> Result<ReplyTo> {
        let invalid = |why: &str| Error::validation("reply_to", why.to_owned());
        let found = match quote {
            Quote::Message(id) => match self.store.get_message(account, *id).await {
                Ok(m) => Some(m),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
            Quote::ProviderId(p) => {
                if p.is_empty() || p.len() > 256 || p.chars().any(char::is_control) {
                    return Err(invalid("must be a message id or a provider message id (1 to 256 characters)"));
                }
                self.store.find_message_by_provider_id(account, p).await?
            }
        };
        let m = found.ok_or_else(|| invalid("no message of the account has this id"))?;
        if m.contact_id != contact.id {
            return Err(invalid("the quoted message belongs to another contact's thread"));
        }
        let provider_message_id = m
            .provider_message_id
            .ok_or_else(|| invalid("the quoted message has no provider id yet (it was not sent)"))?;
        Ok(ReplyTo { message_id: Some(m.id), provider_message_id: Some(provider_message_id) })
    }

    /// The stored message for a repeated reference, when it asked for the
    /// same thing; [`Error::Conflict`] when the reference was used for another message.
    async fn replay(&self, account: AccountId, req: &SendRequest) -> Result<Option<Message>> {
        let Some(r) = &req.client_reference else { return Ok(None) };
        let Some(m) = self.store.find_message_by_client_reference(account, r).await? else { return Ok(None) };
        if !same_request(&m, req) {
            return Err(Error::conflict("message", "this idempotency key was already used for a different message"));
        }
        Ok(Some(m))
    }

    /// The `message.queued` event. An immediate send sets `dispatch_after`:
    /// the dispatcher leaves the message to the caller that long, and only
    /// takes it over (asking the provider first) if it is still queued then,
    /// i.e. the caller died mid-send.
    fn queued_event(&self, p: &Prepared, dispatch_after: Option<DateTime<Utc>>) -> Event {
        let payload = QueuedPayload {
            message: &p.message,
            contact: contact_summary(&p.contact),
            new_recipient: p.new_recipient,
            dispatch_after,
            fallback_template: p.fallback_template.as_ref(),
        };
        self.event(p.message.account_id, EventType::MESSAGE_QUEUED, &payload)
    }

    /// Queues a message for the dispatcher: validates it (content, opt-in,
    /// the channel's capabilities and customer-service window), stores it as
    /// `queued` with its `message.queued` event in one transaction, and
    /// returns. A request whose `client_reference` was seen before returns
    /// the first message (`replayed: true`); [`Error::Conflict`] when that
    /// reference was used for a different message.
    ///
    /// The message is sent by a runtime running the [`Dispatcher`]
    /// ([`Crm::dispatcher`]), in this process or another one on the same store.
    pub async fn queue_message(&self, account: AccountId, req: SendRequest) -> Result<Queued> {
        if let Some(m) = self.replay(account, &req).await? {
            return Ok(Queued { message: m, replayed: true });
        }
        let p = self.prepare(account, &req).await?;
        self.ensure_dispatch_consumer().await?;
        let event = self.queued_event(&p, None);
        match self.store.insert_message(&p.message, &event).await {
            Ok(()) => {
                self.dispatch.notify.notify_one();
                Ok(Queued { message: p.message, replayed: false })
            }
            // The same reference, stored concurrently by another request.
            Err(e @ Error::Conflict { .. }) if req.client_reference.is_some() => {
                match self.replay(account, &req).await? {
                    Some(m) => Ok(Queued { message: m, replayed: true }),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Registers the dispatcher's outbox consumer once per service, so a
    /// queued message is never missed by a dispatcher that starts later.
    async fn ensure_dispatch_consumer(&self) -> Result<()> {
        self.dispatch
            .registered
            .get_or_try_init(|| async { self.store.register_consumer(DISPATCH_CONSUMER, &Dispatcher::filter()).await })
            .await
            .map(|_| ())
    }

    /// Sends a message now and returns the provider's answer recorded on it:
    /// validates it, asks the channel's governor (a message that must wait is
    /// [`Error::RateLimited`] and nothing is stored), stores it as `queued`
    /// (`message.queued`), calls the provider once, then records `sent` with
    /// the provider id or `failed` with the provider's code and reason
    /// (`message.status_updated`). A provider failure is returned as `Ok`
    /// with status `failed`; a channel that is not connected
    /// ([`Error::NotConnected`]) returns it still `queued`, left to the
    /// dispatcher (after the immediate send's handover time, 5 min);
    /// validation and storage problems are errors.
    /// Use [`Crm::queue_message`] for retries and pacing in the background.
    pub async fn send_message(
        &self,
        account: AccountId,
        contact_id: ContactId,
        content: MessageContent,
    ) -> Result<Message> {
        self.send_now(account, SendRequest::new(contact_id, content)).await
    }

    /// [`Crm::send_message`] with a channel and a reference.
    pub async fn send_now(&self, account: AccountId, req: SendRequest) -> Result<Message> {
        if let Some(m) = self.replay(account, &req).await? {
            return Ok(m);
        }
        let p = self.prepare(account, &req).await?;
        if let Route::Channel(channel, governed) = &p.route {
            let recipient = p.contact.whatsapp_id.as_deref().unwrap_or(p.contact.phone.as_str());
            let caps = governed.capabilities();
            match self.channels.governor().admit(channel, &caps, recipient, p.new_recipient).await? {
                Verdict::Go { jitter } if !jitter.is_zero() => tokio::time::sleep(jitter).await,
                Verdict::Go { .. } => {}
                Verdict::Wait { retry_after, .. } => return Err(Error::RateLimited { retry_after }),
            }
        }
        let handover =
            self.now() + chrono::Duration::from_std(IMMEDIATE_HANDOVER).unwrap_or(chrono::Duration::minutes(5));
        let event = self.queued_event(&p, Some(handover));
        self.store.insert_message(&p.message, &event).await?;
        let outbound = self.outbound(&p.contact, &p.message, p.new_recipient);
        let messenger = p.route.messenger();
        let sent = messenger.send(&outbound).await.and_then(|r| check_receipt(messenger.provider(), r));
        let account = p.message.account_id;
        match sent {
            Ok(id) => self.record_sent(account, p.message, id).await,
            // The channel is reconnecting: not a failure. The message stays
            // queued; the dispatcher sends it once the handover time passed.
            Err(Error::NotConnected { .. }) => Ok(p.message),
            Err(e) => self.record_failed(account, p.message, error_of(&e)).await,
        }
    }

    fn outbound(&self, contact: &Contact, message: &Message, new_recipient: bool) -> OutboundMessage {
        OutboundMessage {
            account_id: message.account_id,
            message_id: message.id,
            to: contact.phone.clone(),
            whatsapp_id: contact.whatsapp_id.clone(),
            content: message.content.clone(),
            new_recipient,
            reply_to: message.reply_to.as_ref().and_then(|r| r.provider_message_id.clone()),
        }
    }

    async fn record_sent(&self, account: AccountId, message: Message, provider_id: String) -> Result<Message> {
        let update = StatusUpdate {
            status: MessageStatus::Sent,
            at: self.now(),
            provider_message_id: Some(provider_id),
            error: None,
            pricing: None,
        };
        self.update_status(account, message, update).await
    }

    async fn record_failed(&self, account: AccountId, message: Message, error: MessageError) -> Result<Message> {
        let update = StatusUpdate {
            status: MessageStatus::Failed,
            at: self.now(),
            provider_message_id: None,
            error: Some(error),
            pricing: None,
        };
        self.update_status(account, message, update).await
    }

    /// The contact's customer-service window on each of the account's
    /// enabled channels: whether a free-form message may go out now and
    /// until when, counted from the contact's last message on that channel
    /// ([`Error::NotFound`] for an unknown contact).
    pub async fn contact_windows(&self, account: AccountId, contact_id: ContactId) -> Result<ContactWindows> {
        let contact = self.store.get_contact(account, contact_id).await?;
        let now = self.now();
        let times = self.store.last_inbound_by_channel(account, contact.id).await?;
        let mut channels = Vec::new();
        for c in self.store.list_channels(account).await?.into_iter().filter(|c| c.enabled) {
            let window = self.channels.messenger(&c).await?.capabilities().customer_service_window;
            let last_inbound_at =
                times.iter().filter(|(ch, _)| ch.is_none() || *ch == Some(c.id)).map(|(_, t)| *t).max();
            let (open, closes_at) = match window {
                Some(w) => window_state(last_inbound_at, w, now),
                None => (true, None),
            };
            channels.push(ChannelWindow {
                channel_id: c.id,
                kind: c.kind.clone(),
                window_secs: window.map(|w| w.as_secs()),
                last_inbound_at,
                fallback_template: c.fallback_template().unwrap_or(None),
                open,
                closes_at,
            });
        }
        Ok(ContactWindows { contact_id, last_inbound_at: contact.last_inbound_at, channels })
    }

    /// Renders template `name`/`language` for a contact (strictly: every
    /// placeholder needs a value) into message content. The contact's
    /// `name`, `first_name`, `phone` and `email` are available as variables
    /// unless the caller sets them. The text is bounded by WhatsApp's body
    /// limit ([`MAX_TEXT_LEN`]): a longer result is [`Error::Validation`] on
    /// `variables`, refused before it is allocated.
    pub async fn render_template_for(
        &self,
        account: AccountId,
        contact_id: ContactId,
        name: &str,
        language: &str,
        variables: Variables,
    ) -> Result<MessageContent> {
        let template = self.stored_template(account, name, language).await?;
        let contact = self.store.get_contact(account, contact_id).await?;
        render_for(template, &contact, variables)
    }

    /// Stored template `name`/`language`: [`Error::Validation`] when the pair
    /// cannot name a template, [`Error::NotFound`] when none is stored.
    async fn stored_template(&self, account: AccountId, name: &str, language: &str) -> Result<Template> {
        crate::domain::template::check_template_ref(name, language)?;
        self.store.find_template(account, name, language).await?.ok_or(Error::not_found("template"))
    }

    /// A template message must name a stored template of the account and
    /// carry exactly what the service renders from it, so free text cannot
    /// be labelled a template (and skip the lookup and the 24-hour window).
    /// Returns the content to store and send: the variables as given plus
    /// the contact's own (`name`, `first_name`, `phone`, `email`) that the
    /// template uses and the request left out, so the provider gets every
    /// parameter. Other content is returned as it is. [`Error::NotFound`] on
    /// an unknown template, [`Error::Validation`] on `content.variables`
    /// (missing or extra names, see [`check_template_variables`]) or on
    /// `content.rendered` when the text differs.
    async fn template_content(
        &self,
        account: AccountId,
        contact: &Contact,
        content: MessageContent,
    ) -> Result<MessageContent> {
        let MessageContent::Template { name, language, variables, rendered } = content else { return Ok(content) };
        let template = self.stored_template(account, &name, &language).await?;
        // Missing and unknown variables are named first; the contact's own
        // (`first_name`, …) fill what the request leaves out, as they do in
        // the render.
        let mut effective = variables;
        for (k, v) in super::contact_variables(contact) {
            if template.variables.contains(&k) {
                effective.entry(k).or_insert(v);
            }
        }
        check_template_variables(&template, &effective)?;
        if template.render(&effective, MAX_TEXT_LEN)? != rendered {
            return Err(Error::validation(
                "content.rendered",
                "must be what the stored template renders to: send the template's name and variables instead",
            ));
        }
        Ok(MessageContent::Template { name, language, variables: effective, rendered })
    }

    /// Renders a template ([`Crm::render_template_for`]) and sends it now.
    pub async fn send_template(
        &self,
        account: AccountId,
        contact_id: ContactId,
        name: &str,
        language: &str,
        variables: Variables,
    ) -> Result<Message> {
        let content = self.render_template_for(account, contact_id, name, language, variables).await?;
        self.send_message(account, contact_id, content).await
    }

    /// The dispatcher worker of this service, to run in a
    /// [`Runtime`](crate::workers::Runtime).
    pub fn dispatcher(&self) -> Dispatcher {
        Dispatcher { crm: self.clone() }
    }

    /// Sends one queued message (the dispatcher's handler).
    pub(crate) async fn dispatch(&self, event: &Event, attempt: u32, previous: Option<&str>) -> Outcome {
        match self.try_dispatch(event, attempt, previous).await {
            Ok(o) => o,
            // E.g. looking for an earlier attempt's receipt on a session
            // that is reconnecting: the message waits, no attempt counted.
            Err(Error::NotConnected { .. }) => {
                Outcome::Defer { after: reconnect_wait((self.now() - event.occurred_at).to_std().unwrap_or_default()) }
            }
            Err(e) => Outcome::Retry { error: e.to_string(), after: None },
        }
    }

    async fn fail_queued(&self, account: AccountId, message: Message, code: &str, reason: String) -> Result<Outcome> {
        self.record_failed(account, message, clean_error(MessageError { code: Some(code.into()), reason })).await?;
        Ok(Outcome::Done)
    }

    async fn try_dispatch(&self, event: &Event, attempt: u32, previous: Option<&str>) -> Result<Outcome> {
        let account = event.account_id;
        let Some(id) = event.payload["message"]["id"].as_str().and_then(|s| s.parse::<MessageId>().ok()) else {
            return Ok(Outcome::Fail { error: "the message.queued event names no message".into() });
        };
        let new_recipient = event.payload["new_recipient"].as_bool().unwrap_or(false);
        let message = match self.store.get_message(account, id).await {
            Ok(m) => m,
            // Deleted with its contact: nothing to send.
            Err(Error::NotFound { .. }) => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        if message.status != MessageStatus::Queued {
            return Ok(Outcome::Done);
        }
        let now = self.now();
        // An immediate send is its caller's until the handover time.
        if let Some(after) = event.payload["dispatch_after"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok())
            && after > now
        {
            return Ok(Outcome::Defer { after: (after - now).to_std().unwrap_or(IMMEDIATE_HANDOVER) });
        }
        let last = previous.unwrap_or("no answer from the provider");
        let age = (now - message.created_at).to_std().unwrap_or_default();
        if age > self.dispatch.deadline {
            let reason = format!("not sent within {}: {last}", describe(self.dispatch.deadline));
            return self.fail_queued(account, message, "deadline", reason).await;
        }
        let contact = match self.store.get_contact(account, message.contact_id).await {
            Ok(c) => c,
            Err(Error::NotFound { .. }) => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        if contact.opt_in.status == crate::OptInStatus::OptedOut {
            return self.fail_queued(account, message, "opted_out", "the contact opted out of messages".into()).await;
        }
        let route = match message.channel_id {
            Some(cid) => match self.store.get_channel(account, cid).await {
                Ok(c) if !c.enabled => return Ok(Outcome::Defer { after: Duration::from_secs(60) }),
                Ok(c) => {
                    let m = self.channels.messenger(&c).await?;
                    Route::Channel(Box::new(c), m)
                }
                Err(Error::NotFound { .. }) => {
                    return self.fail_queued(account, message, "channel", "the channel was deleted".into()).await;
                }
                Err(e) => return Err(e),
            },
            None => match self.route(account, None).await {
                Ok(r) => r,
                Err(e @ Error::Validation { .. }) => {
                    return self.fail_queued(account, message, "channel", e.to_string()).await;
                }
                Err(e) => return Err(e),
            },
        };
        let messenger = route.messenger();
        let caps = messenger.capabilities();
        let mut last_inbound = self.window_start(account, &contact, &route, &caps, message.kind()).await?;
        let mut message = message;
        if let Some(window) = caps.customer_service_window
            && message.kind() != MessageKind::Template
            && caps.kinds.contains(&message.kind())
            && !window_state(last_inbound, window, now).0
        {
            // The window closed while the message waited: its fallback
            // template (the request's, else the channel's) goes instead.
            let requested = event.payload.get("fallback_template").filter(|v| !v.is_null());
            let requested = match requested.map(|v| serde_json::from_value::<FallbackTemplate>(v.clone())) {
                Some(Ok(t)) => Some(t),
                Some(Err(e)) => return Ok(Outcome::Fail { error: format!("unreadable fallback_template: {e}") }),
                None => None,
            };
            let configured = match &route {
                Route::Channel(c, _) => c.fallback_template().unwrap_or(None),
                Route::Fallback(_) => None,
            };
            if let Some(template) = requested.or(configured) {
                let reason = format!(
                    "the customer-service window closed while the message was queued: the contact has not written \
                     in the last {}",
                    describe(window)
                );
                let swap = match self.fall_back(account, &contact, template, message.content.clone(), reason).await {
                    Ok(s) => s,
                    Err(e @ Error::Validation { .. }) => {
                        return self.fail_queued(account, message, "not_sendable", e.to_string()).await;
                    }
                    Err(e) => return Err(e),
                };
                let annotation = MessageAnnotation { fallback: Some(swap), ..MessageAnnotation::default() };
                message = match self.annotate_message(account, &message, annotation).await {
                    Ok(m) => m,
                    // Sent or failed meanwhile by its immediate caller.
                    Err(Error::Conflict { .. }) => return Ok(Outcome::Done),
                    Err(e) => return Err(e),
                };
                last_inbound = contact.last_inbound_at;
            }
        }
        if let Err(e) = self.check_sendable(&contact, &message, &caps, messenger.provider(), last_inbound, now) {
            return self.fail_queued(account, message, "not_sendable", e.to_string()).await;
        }
        let outbound = self.outbound(&contact, &message, new_recipient);
        // An earlier attempt may have been accepted without being recorded.
        if attempt > 1
            && let Some(receipt) = messenger.find_receipt(&outbound).await?
        {
            let id = check_receipt(messenger.provider(), receipt)?;
            self.record_sent(account, message, id).await?;
            return Ok(Outcome::Done);
        }
        let sent = match &route {
            Route::Channel(_, governed) => governed.send_paced(&outbound).await,
            Route::Fallback(m) => m.send(&outbound).await.map(Paced::Sent),
        };
        let provider = messenger.provider().to_owned();
        match sent {
            Ok(Paced::Sent(receipt)) => {
                match check_receipt(&provider, receipt) {
                    Ok(id) => self.record_sent(account, message, id).await?,
                    Err(e) => return self.fail_queued(account, message, "provider", e.to_string()).await,
                };
                if let Route::Channel(c, _) = &route
                    && c.throttle.is_some()
                {
                    self.set_throttle(c, None).await?;
                }
                Ok(Outcome::Done)
            }
            Ok(Paced::Wait { retry_after, throttle }) => {
                if let (Route::Channel(c, _), Some(t)) = (&route, throttle)
                    && c.throttled_at(now).is_none()
                {
                    self.set_throttle(c, Some(t)).await?;
                }
                Ok(Outcome::Defer { after: retry_after })
            }
            Err(Error::RateLimited { retry_after }) => {
                if let Route::Channel(c, _) = &route {
                    let until = now + chrono::Duration::from_std(retry_after).unwrap_or(chrono::Duration::minutes(1));
                    let t = Throttle { reason: format!("{provider} asked to slow down"), since: now, until };
                    self.set_throttle(c, Some(t)).await?;
                }
                Ok(Outcome::Defer { after: retry_after })
            }
            Err(e @ Error::NotConnected { .. }) => {
                let after = reconnect_wait(age);
                tracing::info!(channel = ?message.channel_id, wait_ms = after.as_millis() as u64, "{e}; the message waits");
                Ok(Outcome::Defer { after })
            }
            Err(e) if e.is_transient() && attempt < self.dispatch.max_attempts => {
                let after = match &e {
                    Error::Provider { retry_after, .. } => *retry_after,
                    _ => None,
                };
                Ok(Outcome::Retry { error: e.to_string(), after })
            }
            Err(e) if e.is_transient() => {
                let error = error_of(&e);
                let reason = format!("gave up after {attempt} attempts: {}", error.reason);
                self.record_failed(account, message, MessageError { code: error.code, reason }).await?;
                Ok(Outcome::Done)
            }
            Err(e) => {
                self.record_failed(account, message, error_of(&e)).await?;
                Ok(Outcome::Done)
            }
        }
    }

    /// Sets or clears a channel's throttle (`channel.throttled` / `channel.resumed`).
    async fn set_throttle(&self, channel: &Channel, throttle: Option<Throttle>) -> Result<()> {
        let (kind, payload) = match &throttle {
            Some(t) => (
                EventType::CHANNEL_THROTTLED,
                json!({ "id": channel.id, "reason": t.reason, "since": t.since, "until": t.until }),
            ),
            None => (EventType::CHANNEL_RESUMED, json!({ "id": channel.id })),
        };
        let event = self.event(channel.account_id, kind, &payload);
        match self.store.set_channel_throttle(channel.account_id, channel.id, throttle.as_ref(), &event).await {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        self.channels.forget(channel.id);
        self.default_channels.forget(channel.account_id);
        if let Some(t) = &throttle {
            tracing::warn!(channel = %channel.id, reason = %t.reason, until = %t.until, "channel throttled");
        }
        Ok(())
    }
}

/// The outbox consumer that sends queued messages ([`DISPATCH_CONSUMER`]).
#[derive(Debug, Clone)]
pub struct Dispatcher {
    crm: Crm,
}

impl Dispatcher {
    /// The events it consumes: `message.queued`.
    pub fn filter() -> EventFilter {
        EventFilter::only([EventType::MESSAGE_QUEUED.as_str()]).unwrap_or_default()
    }

    /// Options that suit it: the runtime never dead-letters an item before
    /// the dispatcher has recorded the message as failed.
    pub fn options(&self) -> WorkerOptions {
        WorkerOptions {
            batch: 64,
            concurrency: 32,
            max_attempts: self.crm.dispatch.max_attempts + 1,
            ..WorkerOptions::default()
        }
    }
}

#[async_trait]
impl EventWorker for Dispatcher {
    fn name(&self) -> &str {
        DISPATCH_CONSUMER
    }

    fn events(&self) -> EventFilter {
        Self::filter()
    }

    async fn handle(&self, event: &Event, attempt: u32, previous_error: Option<&str>) -> Outcome {
        self.crm.dispatch(event, attempt, previous_error).await
    }

    fn wakeup(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.crm.dispatch.notify.clone())
    }
}
