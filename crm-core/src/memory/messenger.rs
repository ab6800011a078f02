//! A `Messenger` double that records what it is asked to send.

use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::secrets::Credentials;
use crate::{
    Capabilities, Channel, ChannelKind, Error, Health, HealthCheck, Messenger, MessengerFactory, OutboundMessage,
    Result, SendReceipt,
};

/// One message the [`RecordingMessenger`] accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    /// What was sent.
    pub message: OutboundMessage,
    /// The id it answered with.
    pub provider_message_id: String,
}

#[derive(Debug, Clone)]
struct Failure {
    code: Option<String>,
    reason: String,
    transient: bool,
}

#[derive(Debug, Default)]
struct Inner {
    sent: Vec<SentMessage>,
    failures: VecDeque<Failure>,
    capabilities: Option<Capabilities>,
    keep_last: Option<usize>,
    groups: Option<super::MemoryGroups>,
    reads: Vec<crate::ReadReceipt>,
    /// Set while "disconnected": why.
    offline: Option<String>,
}

/// The own number of a [`RecordingMessenger`]'s groups.
pub const RECORDING_NUMBER: &str = "+5511900000000";

/// Accepts every message and remembers it; can be told to fail the next sends
/// the way a provider would. Clones share their record.
///
/// Used by tests and by the server when no WhatsApp provider is configured.
#[derive(Debug, Clone, Default)]
pub struct RecordingMessenger(Arc<Mutex<Inner>>);

impl RecordingMessenger {
    /// A messenger that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reports these capabilities instead of [`Capabilities::everything`].
    pub fn with_capabilities(self, capabilities: Capabilities) -> Self {
        self.lock().capabilities = Some(capabilities);
        self
    }

    /// Remembers only the last `n` messages (a server running on this double
    /// must not grow without bound); by default it remembers all.
    pub fn keep_last(self, n: usize) -> Self {
        self.lock().keep_last = Some(n);
        self
    }

    /// Makes the next send fail with a provider error.
    pub fn fail_next(&self, code: Option<&str>, reason: &str, transient: bool) {
        self.lock().failures.push_back(Failure { code: code.map(str::to_owned), reason: reason.to_owned(), transient });
    }

    /// Behaves like a session that lost its connection (`Some(reason)`)
    /// or got it back (`None`): while disconnected, sends, receipt look-ups
    /// and read receipts answer [`Error::NotConnected`].
    pub fn set_offline(&self, reason: Option<&str>) {
        self.lock().offline = reason.map(str::to_owned);
    }

    fn check_online(inner: &Inner) -> Result<()> {
        match &inner.offline {
            Some(reason) => Err(Error::not_connected("recording", reason.clone())),
            None => Ok(()),
        }
    }

    /// Its groups ([`MemoryGroups`](super::MemoryGroups) whose own number
    /// is [`RECORDING_NUMBER`]), handed out by
    /// [`Messenger::group_manager`]; clones share them.
    pub fn groups(&self) -> super::MemoryGroups {
        let mut inner = self.lock();
        inner
            .groups
            .get_or_insert_with(|| {
                super::MemoryGroups::new(crate::Phone::parse(RECORDING_NUMBER).unwrap_or_else(|_| unreachable!()))
            })
            .clone()
    }

    /// Everything accepted so far, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.lock().sent.clone()
    }

    /// The read receipts sent so far, in order.
    pub fn reads(&self) -> Vec<crate::ReadReceipt> {
        self.lock().reads.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl HealthCheck for RecordingMessenger {
    fn name(&self) -> &str {
        "messenger"
    }

    async fn check(&self) -> Health {
        Health::degraded(std::time::Duration::ZERO, "recording messenger: messages are not delivered")
    }
}

#[async_trait]
impl Messenger for RecordingMessenger {
    fn provider(&self) -> &str {
        "recording"
    }

    fn capabilities(&self) -> Capabilities {
        self.lock().capabilities.clone().unwrap_or_else(Capabilities::everything)
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt> {
        let mut inner = self.lock();
        Self::check_online(&inner)?;
        if let Some(f) = inner.failures.pop_front() {
            return Err(Error::Provider {
                provider: "recording".into(),
                transient: f.transient,
                code: f.code,
                message: f.reason,
                retry_after: None,
                source: None,
            });
        }
        let provider_message_id = format!("rec.{}", uuid::Uuid::now_v7().simple());
        inner.sent.push(SentMessage { message: message.clone(), provider_message_id: provider_message_id.clone() });
        if let Some(n) = inner.keep_last
            && inner.sent.len() > n
        {
            let excess = inner.sent.len() - n;
            inner.sent.drain(..excess);
        }
        Ok(SendReceipt { provider_message_id })
    }

    fn group_manager(self: Arc<Self>) -> Option<Arc<dyn crate::GroupManager>> {
        Some(Arc::new(self.groups()))
    }

    async fn find_receipt(&self, message: &OutboundMessage) -> Result<Option<SendReceipt>> {
        let inner = self.lock();
        Self::check_online(&inner)?;
        Ok(inner
            .sent
            .iter()
            .rev()
            .find(|s| s.message.message_id == message.message_id)
            .map(|s| SendReceipt { provider_message_id: s.provider_message_id.clone() }))
    }

    async fn mark_read(&self, receipt: &crate::ReadReceipt) -> Result<()> {
        let mut inner = self.lock();
        Self::check_online(&inner)?;
        inner.reads.push(receipt.clone());
        if let Some(n) = inner.keep_last
            && inner.reads.len() > n
        {
            inner.reads.remove(0);
        }
        Ok(())
    }
}

/// The [`MessengerFactory`] of the `recording` channel kind: every channel
/// of this kind sends through one shared [`RecordingMessenger`], so a test
/// (or the server's quick start) sees every message in one place.
#[derive(Debug, Clone, Default)]
pub struct RecordingFactory {
    messenger: RecordingMessenger,
}

impl RecordingFactory {
    /// A factory whose channels all send through `messenger`.
    pub fn new(messenger: RecordingMessenger) -> Self {
        Self { messenger }
    }

    /// The shared messenger.
    pub fn messenger(&self) -> &RecordingMessenger {
        &self.messenger
    }
}

#[async_trait]
impl MessengerFactory for RecordingFactory {
    fn kind(&self) -> &str {
        ChannelKind::RECORDING
    }

    fn validate(&self, _channel: &Channel, _credentials: Option<&Credentials>) -> Result<()> {
        Ok(())
    }

    async fn build(&self, _channel: &Channel, _credentials: Credentials) -> Result<Arc<dyn Messenger>> {
        Ok(Arc::new(self.messenger.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountId, MessageContent, MessageId, Phone};

    #[tokio::test]
    async fn keep_last_bounds_the_record() {
        let m = RecordingMessenger::new().keep_last(2);
        for i in 0..5 {
            let msg = OutboundMessage {
                account_id: AccountId::new(),
                message_id: MessageId::new(),
                to: Phone::parse("+5511987654321").unwrap(),
                whatsapp_id: None,
                content: MessageContent::text(format!("m{i}")),
                new_recipient: false,
                reply_to: None,
            };
            m.send(&msg).await.unwrap();
        }
        let bodies: Vec<String> = m.sent().iter().map(|s| s.message.content.preview()).collect();
        assert_eq!(bodies, ["m3", "m4"]);
    }
}
