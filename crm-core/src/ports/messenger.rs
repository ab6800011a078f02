//! The `Messenger` port: sends messages through a provider.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::Duration;

use crate::{AccountId, HealthCheck, MessageContent, MessageId, MessageKind, Phone, Result};

/// One outbound message handed to a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// The sending account.
    pub account_id: AccountId,
    /// crm's id of the message (providers may use it as an idempotency key).
    pub message_id: MessageId,
    /// Recipient phone (canonical E.164).
    pub to: Phone,
    /// The recipient's WhatsApp id when known (may differ from `to` for
    /// Brazilian numbers registered without the 9th digit).
    pub whatsapp_id: Option<String>,
    /// What to send (already validated).
    pub content: MessageContent,
    /// Whether the recipient got nothing from the account in the last 24
    /// hours: such a send counts toward a channel's daily unique-recipient cap.
    #[serde(default)]
    pub new_recipient: bool,
    /// The provider's id of the message this one replies to (quoted), if any.
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// A read receipt: the account read a conversation up to one inbound
/// message (the contact sees blue ticks on it and everything before it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadReceipt {
    /// The reading account.
    pub account_id: AccountId,
    /// The provider's id of the newest inbound message read.
    pub provider_message_id: String,
    /// The contact's phone (canonical E.164).
    pub from: Phone,
    /// The contact's WhatsApp id when known.
    pub whatsapp_id: Option<String>,
}

/// What the provider answered when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendReceipt {
    /// The provider's id, used to match later status updates.
    pub provider_message_id: String,
}

/// What a messenger can do; the service checks content against it before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Message kinds it can send.
    pub kinds: BTreeSet<MessageKind>,
    /// When set, free-form (non-template) messages may only be sent within this
    /// long after the contact's last inbound message (WhatsApp Cloud: 24 h).
    pub customer_service_window: Option<Duration>,
    /// Sustained messages per second the provider accepts for one sender.
    pub max_messages_per_second: Option<u32>,
    /// Least time between two messages to the same recipient the provider
    /// accepts (WhatsApp Cloud's pair rate: 6 s).
    pub pair_interval: Option<Duration>,
    /// Whether it manages groups.
    pub groups: bool,
}

impl Capabilities {
    /// Everything, no window and no pace: what test doubles report.
    pub fn everything() -> Self {
        use MessageKind::*;
        Capabilities {
            kinds: [Text, Image, Audio, Video, Document, Sticker, Location, Contacts, Reaction, Interactive, Template]
                .into_iter()
                .collect(),
            customer_service_window: None,
            max_messages_per_second: None,
            pair_interval: None,
            groups: false,
        }
    }
}

/// A WhatsApp (or other channel) provider.
///
/// Contract:
/// - `send` either returns the provider's id for an accepted message, or an
///   [`Error::Provider`](crate::Error::Provider) whose `transient` flag says
///   whether the same send may succeed later (timeouts, 5xx, 429 are transient;
///   invalid recipient, template rejected, outside the window are not), with the
///   provider's code and reason and no credentials.
/// - `send` is never called with content of a kind missing from `capabilities()`.
/// - `name` is stable and used in errors and metrics.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crm_core::{Messenger, RecordingMessenger, OutboundMessage, MessageContent, AccountId, MessageId, Phone};
/// let messenger = RecordingMessenger::new();
/// let receipt = messenger.send(&OutboundMessage {
///     account_id: AccountId::new(),
///     message_id: MessageId::new(),
///     to: Phone::parse("+5511987654321")?,
///     whatsapp_id: None,
///     content: MessageContent::text("Olá!"),
///     new_recipient: true,
///     reply_to: None,
/// }).await?;
/// assert_eq!(messenger.sent().len(), 1);
/// assert!(receipt.provider_message_id.starts_with("rec."));
/// # Ok::<(), crm_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait Messenger: HealthCheck {
    /// Stable provider name, e.g. `"whatsapp-cloud"`.
    fn provider(&self) -> &str;

    /// What it supports.
    fn capabilities(&self) -> Capabilities;

    /// Sends one message. Providers that accept an idempotency key get
    /// `message.message_id` as that key, so a repeated send is not delivered twice.
    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt>;

    /// Whether the provider already accepted this message (crm's
    /// `message_id`), for providers that can tell: the dispatcher asks before
    /// sending again a message whose earlier attempt ended without a
    /// recorded answer (the process died between the provider's acceptance
    /// and the write). `Ok(None)` means "not known to have been sent"; the
    /// default, for providers that cannot tell, always answers that.
    async fn find_receipt(&self, message: &OutboundMessage) -> Result<Option<SendReceipt>> {
        let _ = message;
        Ok(None)
    }

    /// The channel's [`GroupManager`](crate::GroupManager), for providers
    /// that know about groups (those that do not offer group operations
    /// may still hand one out that answers
    /// [`Error::Unsupported`](crate::Error::Unsupported), to say so). The
    /// default: none, which callers report as unsupported too.
    fn group_manager(self: std::sync::Arc<Self>) -> Option<std::sync::Arc<dyn crate::GroupManager>> {
        None
    }

    /// Marks the contact's conversation read up to
    /// `receipt.provider_message_id` (WhatsApp's blue ticks). The default,
    /// for providers without read receipts, is [`Error::Validation`] on
    /// `channel`; providers that have them send it, with the same error
    /// rules as `send`.
    async fn mark_read(&self, receipt: &ReadReceipt) -> Result<()> {
        let _ = receipt;
        Err(crate::Error::validation("channel", format!("the {} channel does not send read receipts", self.provider())))
    }
}
