//! Lead scoring by events: [`ScoringWorker`] applies the account's
//! [`ScoringModel`](crate::domain::scoring::ScoringModel) to inbound messages and
//! tag changes; [`DecayWorker`] takes points off silent contacts, one
//! durable job per contact (no scans).

use async_trait::async_trait;
use chrono::Duration;
use serde_json::json;

use super::{is_transient, schedule_job};
use crate::workers::{EventWorker, JobWorker, Outcome};
use crate::{AccountId, Contact, ContactId, Crm, Error, Event, EventFilter, EventType, Job, Result};

/// The scoring worker's outbox consumer name.
pub const SCORING_CONSUMER: &str = "scoring";
/// Job kind: one contact's inactivity decay (payload `{"contact_id"}`).
pub const DECAY_JOB: &str = "scoring.decay";

fn outcome(r: Result<()>) -> Outcome {
    match r {
        Ok(()) => Outcome::Done,
        Err(e) if is_transient(&e) => Outcome::retry(e.to_string()),
        // The contact was deleted meanwhile: nothing to score.
        Err(Error::NotFound { .. }) => Outcome::Done,
        Err(e) => Outcome::Fail { error: e.to_string() },
    }
}

/// Outbox consumer [`SCORING_CONSUMER`] on `message.received`,
/// `contact.created` and `contact.updated`.
#[derive(Debug, Clone)]
pub struct ScoringWorker {
    crm: Crm,
}

impl ScoringWorker {
    /// The worker over `crm`.
    pub fn new(crm: Crm) -> Self {
        Self { crm }
    }

    /// Applies the model to one event.
    pub async fn score(&self, event: &Event) -> Result<()> {
        let account = event.account_id;
        let model = self.crm.scoring_model(account).await?;
        if !model.enabled {
            return Ok(());
        }
        let Some(contact_id) = super::contact_of(event) else { return Ok(()) };
        let contact = self.crm.get_contact(account, contact_id).await?;
        if event.event_type == EventType::MESSAGE_RECEIVED {
            let Some(facts) = super::message_of(event) else { return Ok(()) };
            let campaign_reply = self.is_campaign_reply(event).await?;
            let since = contact.last_outbound_at.map(|out| event.occurred_at - out);
            for (signal, points) in model.message_points(&facts.text, since, campaign_reply) {
                let cause = format!("{}:{signal}", event.id);
                self.crm.change_score(account, contact_id, i32::from(points), &signal, &cause, Some(event.id)).await?;
            }
            if let Some(decay) = &model.decay {
                let at = event.occurred_at + Duration::days(i64::from(decay.after_days));
                let payload = json!({ "contact_id": contact_id });
                schedule_job(&self.crm, DECAY_JOB, account, payload, at, &format!("decay:{contact_id}")).await?;
            }
        } else {
            for t in &model.tags {
                if contact.tags.iter().any(|x| x.as_str() == t.tag.trim().to_lowercase()) {
                    let signal = format!("tag:{}", t.tag.trim().to_lowercase());
                    self.crm
                        .change_score(account, contact_id, i32::from(t.points), &signal, &signal, Some(event.id))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Whether the message quotes a message a campaign sent.
    async fn is_campaign_reply(&self, event: &Event) -> Result<bool> {
        let quoted = event.payload["message"]["reply_to"]["message_id"].as_str().and_then(|s| s.parse().ok());
        let Some(quoted) = quoted else { return Ok(false) };
        match self.crm.get_message(event.account_id, quoted).await {
            Ok(m) => Ok(m.client_reference.is_some_and(|r| r.starts_with("campaign:"))),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl EventWorker for ScoringWorker {
    fn name(&self) -> &str {
        SCORING_CONSUMER
    }

    fn events(&self) -> EventFilter {
        EventFilter::only(["message.received", "contact.created", "contact.updated"]).unwrap_or_default()
    }

    async fn handle(&self, event: &Event, _attempt: u32, _previous_error: Option<&str>) -> Outcome {
        outcome(self.score(event).await)
    }
}

/// Job worker [`DECAY_JOB`]: when a contact has been silent for the model's
/// `after_days`, takes `points_per_day` off once per further day (each day
/// a cause of its own, so a retried job takes it once) and waits for the
/// next day; a contact who wrote meanwhile waits until `after_days` after
/// that message. Ends when the score reaches 0 or decay is off.
#[derive(Debug, Clone)]
pub struct DecayWorker {
    crm: Crm,
}

impl DecayWorker {
    /// The worker over `crm`.
    pub fn new(crm: Crm) -> Self {
        Self { crm }
    }

    /// Decays one contact; `Some(wait)` when the job should run again after `wait`.
    pub async fn decay(&self, account: AccountId, contact_id: ContactId) -> Result<Option<std::time::Duration>> {
        let model = self.crm.scoring_model(account).await?;
        let Some(decay) = model.decay.filter(|_| model.enabled) else { return Ok(None) };
        let contact: Contact = self.crm.get_contact(account, contact_id).await?;
        let last = contact.last_inbound_at.unwrap_or(contact.created_at);
        let starts = last + Duration::days(i64::from(decay.after_days));
        let now = self.crm.clock().now();
        if now < starts {
            return Ok(Some((starts - now).to_std().unwrap_or_default()));
        }
        if contact.lead_score == 0 {
            return Ok(None);
        }
        let day = (now - starts).num_days();
        let cause = format!("decay:{}:{day}", last.timestamp());
        self.crm.change_score(account, contact_id, -i32::from(decay.points_per_day), "decay", &cause, None).await?;
        let next = starts + Duration::days(day + 1);
        Ok(Some((next - now).to_std().unwrap_or_default()))
    }
}

#[async_trait]
impl JobWorker for DecayWorker {
    fn kind(&self) -> &str {
        DECAY_JOB
    }

    async fn run(&self, job: &Job) -> Outcome {
        let Some(account) = job.account_id else { return Outcome::Fail { error: "the job names no account".into() } };
        let contact: Option<ContactId> = job.payload["contact_id"].as_str().and_then(|s| s.parse().ok());
        let Some(contact) = contact else { return Outcome::Fail { error: "the job names no contact".into() } };
        match self.decay(account, contact).await {
            Ok(Some(after)) => Outcome::Defer { after },
            other => outcome(other.map(|_| ())),
        }
    }
}
