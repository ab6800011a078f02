//! A `Messenger` double that records what it is asked to send.

use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::{Capabilities, Error, Health, HealthCheck, Messenger, OutboundMessage, Result, SendReceipt};

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
}

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

    /// Makes the next send fail with a provider error.
    pub fn fail_next(&self, code: Option<&str>, reason: &str, transient: bool) {
        self.lock().failures.push_back(Failure { code: code.map(str::to_owned), reason: reason.to_owned(), transient });
    }

    /// Everything accepted so far, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.lock().sent.clone()
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
        if let Some(f) = inner.failures.pop_front() {
            return Err(Error::Provider {
                provider: "recording".into(),
                transient: f.transient,
                code: f.code,
                message: f.reason,
                source: None,
            });
        }
        let provider_message_id = format!("rec.{}", uuid::Uuid::now_v7().simple());
        inner.sent.push(SentMessage { message: message.clone(), provider_message_id: provider_message_id.clone() });
        Ok(SendReceipt { provider_message_id })
    }
}
