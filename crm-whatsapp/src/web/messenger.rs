//! [`WebFactory`] (the `whatsapp-web` channel kind) and [`WebMessenger`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crm_core::secrets::Credentials;
use crm_core::{
    Capabilities, Channel, ChannelId, Error, Health, HealthCheck, MessageContent, MessageKind, Messenger,
    MessengerFactory, OutboundMessage, ReadReceipt, Result, SendReceipt,
};

use super::engine::WebEngine;
use super::state::SessionState;
use super::{KIND, PROVIDER};

/// Builds the messenger of a `whatsapp-web` channel: a handle on the
/// channel's session in the [`WebEngine`]. A channel of this kind has no
/// settings and no credentials (the session's login lives in its profile
/// folder); its `provider_id`, when set, is a name the account chooses.
#[derive(Debug, Clone)]
pub struct WebFactory {
    engine: WebEngine,
}

impl WebFactory {
    /// A factory over `engine`.
    pub fn new(engine: WebEngine) -> Self {
        Self { engine }
    }

    /// The engine.
    pub fn engine(&self) -> &WebEngine {
        &self.engine
    }
}

#[async_trait]
impl MessengerFactory for WebFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn validate(&self, channel: &Channel, credentials: Option<&Credentials>) -> Result<()> {
        if !channel.settings.is_empty() {
            return Err(Error::validation("settings", "a whatsapp-web channel has no settings"));
        }
        if credentials.is_some_and(|c| !c.is_empty()) {
            return Err(Error::validation(
                "credentials",
                "a whatsapp-web channel has no credentials: it is paired by scanning its QR code",
            ));
        }
        Ok(())
    }

    async fn build(&self, channel: &Channel, _credentials: Credentials) -> Result<Arc<dyn Messenger>> {
        Ok(Arc::new(WebMessenger { engine: self.engine.clone(), channel: channel.id }))
    }
}

/// Sends through one channel's WhatsApp Web session. A send while the
/// session is not connected here is a transient provider error (the
/// dispatcher retries it); one on a logged-out or failed session is permanent.
#[derive(Debug, Clone)]
pub struct WebMessenger {
    engine: WebEngine,
    channel: ChannelId,
}

impl WebMessenger {
    /// A messenger for `channel`'s session in `engine`.
    pub fn new(engine: WebEngine, channel: ChannelId) -> Self {
        Self { engine, channel }
    }
}

#[async_trait]
impl Messenger for WebMessenger {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kinds: BTreeSet::from([
                MessageKind::Text,
                MessageKind::Image,
                MessageKind::Audio,
                MessageKind::Video,
                MessageKind::Document,
            ]),
            customer_service_window: None,
            max_messages_per_second: None,
            pair_interval: None,
            groups: true,
        }
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt> {
        let to = match &message.content {
            MessageContent::Text { .. } | MessageContent::Media { .. } => {
                self.engine.recipient(self.channel, message).await?
            }
            _ => return Err(Error::validation("content", "a whatsapp-web channel sends text and media messages only")),
        };
        let id = match &message.content {
            MessageContent::Text { body, .. } => self.engine.send_text(self.channel, &to, body).await?,
            _ => self.engine.send_media(self.channel, &to, message).await?,
        };
        let id = self.engine.canonical_key(message.account_id, self.channel, &id).await;
        Ok(SendReceipt { provider_message_id: id })
    }

    /// [`WebGroups`](super::WebGroups): groups through the session.
    fn group_manager(self: Arc<Self>) -> Option<Arc<dyn crm_core::GroupManager>> {
        Some(Arc::new(super::WebGroups::new(self.engine.clone(), self.channel)))
    }

    /// `sendSeen` on the message's chat (the chat of its key, else the
    /// contact's WhatsApp id): WhatsApp Web marks the whole chat read.
    async fn mark_read(&self, receipt: &ReadReceipt) -> Result<()> {
        self.engine.mark_read_receipt(self.channel, receipt).await
    }
}

#[async_trait]
impl HealthCheck for WebMessenger {
    fn name(&self) -> &str {
        PROVIDER
    }

    /// Healthy when connected; degraded while opening, pairing or
    /// reconnecting, or when the session is open in another process;
    /// unhealthy when logged out, failed or taken over elsewhere.
    async fn check(&self) -> Health {
        let zero = Duration::ZERO;
        let Some(status) = self.engine.status(self.channel) else {
            return match self.engine.owner_elsewhere(self.channel) {
                Some(owner) => Health::degraded(zero, format!("the session is open in another process ({owner})")),
                None => Health::degraded(zero, "the session is not open in this process"),
            };
        };
        match &status.state {
            SessionState::Connected => Health { detail: Some("connected".into()), ..Health::healthy(zero) },
            SessionState::Failed { reason } => Health::unhealthy(zero, reason.clone()),
            SessionState::LoggedOut => Health::unhealthy(zero, "logged out from the phone: pair the channel again"),
            SessionState::Conflict => Health::unhealthy(zero, "WhatsApp Web was opened elsewhere for this number"),
            SessionState::Reconnecting { attempt, reason } => {
                Health::degraded(zero, format!("reconnecting (attempt {attempt}): {reason}"))
            }
            other => Health::degraded(zero, format!("session {}", other.name())),
        }
    }
}
