//! [`Analyzer`]: the `assistant` outbox consumer. For every inbound message
//! (`message.received`) it classifies the message's sentiment and the
//! conversation's lead signals and stores them with a `message.analyzed`
//! event; then, by the auto-reply setting of the message's channel (else
//! the account's): `suggest` stores a draft for an agent
//! (`ai.draft_suggested`), `send` queues the draft through the send
//! pipeline with the client reference `ai:<message id>` (so a second run
//! finds the first message) — `queue_message` enforces opt-in and the
//! 24-hour window; a refused send is logged and not retried.

use async_trait::async_trait;
use std::time::Duration;

use crm_core::domain::assistant::{AutoReplyMode, MessageAnalysis, message_text};
use crm_core::workers::{EventWorker, Outcome, WorkerOptions};
use crm_core::{Direction, Error, Event, EventFilter, EventType, MessageContent, MessageId, SendRequest};

use crate::service::AssistantService;

/// The outbox consumer name.
pub const CONSUMER: &str = "assistant";

/// Analyzes inbound messages and applies the auto-reply setting.
#[derive(Debug, Clone)]
pub struct Analyzer {
    service: AssistantService,
}

impl Analyzer {
    /// The worker over `service`.
    pub fn new(service: AssistantService) -> Self {
        Analyzer { service }
    }

    /// Worker options: a few at once (each is one or more model calls).
    pub fn options() -> WorkerOptions {
        WorkerOptions { concurrency: 4, max_attempts: 8, lease: Duration::from_secs(120), ..WorkerOptions::default() }
    }

    async fn analyze(&self, event: &Event) -> crm_core::Result<()> {
        let account = event.account_id;
        let id = event
            .payload
            .get("message")
            .and_then(|m| m.get("id"))
            .and_then(|id| id.as_str())
            .and_then(|id| id.parse::<MessageId>().ok())
            .ok_or_else(|| Error::validation("payload", "message.received without a message id"))?;
        let crm = self.service.crm();
        let message = crm.get_message(account, id).await?;
        if message.direction != Direction::Inbound {
            return Ok(());
        }
        let Some(text) = message_text(&message) else { return Ok(()) };
        let assistant = self.service.assistant();
        let conversation = self.service.conversation(account, message.contact_id).await?;
        let sentiment = assistant.classify_sentiment(account, &text).await?;
        let signals = assistant.lead_signals(account, &conversation).await?;
        let analysis = MessageAnalysis {
            message_id: message.id,
            account_id: account,
            contact_id: message.contact_id,
            sentiment: sentiment.value,
            signals: signals.value,
            model: sentiment.model,
            analyzed_at: crm.clock().now(),
        };
        self.service.record_analysis(&analysis).await?;

        match self.service.auto_reply_mode(account, message.channel_id).await? {
            AutoReplyMode::Off => Ok(()),
            AutoReplyMode::Suggest => {
                let drafts = crm.store().list_ai_drafts(account, message.contact_id, 20).await?;
                if drafts.iter().any(|d| d.message_id == Some(message.id)) {
                    return Ok(()); // stored by an earlier run
                }
                let context = self.service.context_for(account, message.channel_id).await?;
                let draft = self.service.draft_reply(account, message.contact_id, Some(context)).await?;
                self.service.store_draft(account, message.contact_id, Some(message.id), &draft).await.map(|_| ())
            }
            AutoReplyMode::Send => {
                let context = self.service.context_for(account, message.channel_id).await?;
                let draft = self.service.draft_reply(account, message.contact_id, Some(context)).await?;
                let mut request = SendRequest::new(message.contact_id, MessageContent::text(draft.value))
                    .reference(format!("ai:{}", message.id));
                if let Some(channel) = message.channel_id {
                    request = request.via(channel);
                }
                match crm.queue_message(account, request).await {
                    Ok(_) => Ok(()),
                    Err(e @ (Error::Validation { .. } | Error::Conflict { .. } | Error::NotFound { .. })) => {
                        tracing::info!(%account, message = %message.id, error = %e, "auto-reply not sent");
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}

#[async_trait]
impl EventWorker for Analyzer {
    fn name(&self) -> &str {
        CONSUMER
    }

    fn events(&self) -> EventFilter {
        EventFilter::only([EventType::MESSAGE_RECEIVED.as_str()]).unwrap_or_else(|_| EventFilter::all())
    }

    async fn handle(&self, event: &Event, _attempt: u32, _previous_error: Option<&str>) -> Outcome {
        match self.analyze(event).await {
            Ok(()) => Outcome::Done,
            Err(e) if e.is_transient() => {
                let after = match &e {
                    Error::Provider { retry_after, .. } => *retry_after,
                    Error::RateLimited { retry_after } => Some(*retry_after),
                    _ => None,
                };
                Outcome::Retry { error: format!("{}: {e}", e.kind()), after }
            }
            Err(e @ (Error::NotFound { .. } | Error::Validation { .. })) => {
                tracing::info!(event = %event.id, error = %e, "assistant: nothing to analyze");
                Outcome::Done
            }
            Err(e) => Outcome::Fail { error: format!("{}: {e}", e.kind()) },
        }
    }
}
