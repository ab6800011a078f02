//! Campaigns: a template sent to an audience through one channel.
//!
//! The flows here create a campaign and move it through its states
//! (`campaign.*` events). The sending is two workers:
//!
//! - [`CampaignRunner`], a job worker ([`CAMPAIGN_JOB`]): one durable job
//!   per campaign (its id is the campaign's) that lives from the start (or
//!   the schedule) to the end. Each run plans the next batch of the audience
//!   into recipient rows when the pending ones run low, then hands pending
//!   recipients to the send pipeline ([`Crm::queue_message`]) while fewer
//!   than [`WINDOW_SECS`] seconds' worth of the channel's rate are in
//!   flight, and defers itself. The dispatcher and its governor do the
//!   pacing; the window only keeps the queue short, so a pause or a cancel
//!   stops the campaign within a few seconds' worth of messages.
//! - [`CampaignTracker`], an outbox consumer ([`CAMPAIGN_CONSUMER`]) of
//!   `message.status_updated` and `message.received`: it moves each
//!   recipient with its message (sent, delivered, read, failed) and marks
//!   replies, so the counters stay current.
//!
//! **Exactly once.** A recipient's message carries the client reference
//! `campaign:<campaign id>:<seq>`, unique per account: if the process dies
//! after queueing a message and before marking its recipient, the next run
//! queues it again and gets the first message back (`replayed`), so a
//! recipient never has two messages. The dispatcher's own at-least-once
//! window (a provider accepting a message just before a crash) is covered
//! by [`Messenger::find_receipt`](crate::Messenger::find_receipt).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Crm;
use super::sending::render_for;
use crate::domain::campaign::{PlannedRecipient, SkipReason, plan_contact};
use crate::workers::{Backoff, EventWorker, JobWorker, Outcome, WorkerOptions};
use crate::{
    AccountId, Audience, Campaign, CampaignCounters, CampaignId, CampaignState, ContactId, ContactQuery, ContactSearch,
    Error, Event, EventFilter, EventType, Job, JobId, MessageId, MessageStatus, Messenger, NewCampaign, Page,
    PageRequest, Recipient, RecipientState, Result, SendRequest, Template,
};

/// The job kind of the campaign runner.
pub const CAMPAIGN_JOB: &str = "campaign";

/// The outbox consumer name of the campaign tracker.
pub const CAMPAIGN_CONSUMER: &str = "campaigns";

/// Seconds of the channel's rate a running campaign keeps in the send
/// pipeline at most.
pub const WINDOW_SECS: u32 = 3;

/// Messages in flight for a channel without a rate.
const UNPACED_WINDOW: u64 = 500;

/// Contacts read per page while planning, and pages per plan batch.
const PLAN_PAGE: u32 = 200;
const PLAN_PAGES: usize = 5;

/// Recipients handed to the pipeline at once.
const QUEUE_CONCURRENCY: usize = 16;

/// How often a running campaign's job comes back.
const TICK: Duration = Duration::from_millis(250);
/// How often a paused or scheduled campaign's job looks again.
const IDLE_TICK: Duration = Duration::from_secs(2);

/// A campaign with its counters and when it should finish.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignView {
    /// The campaign.
    #[serde(flatten)]
    pub campaign: Campaign,
    /// Its recipients counted.
    pub counters: CampaignCounters,
    /// The channel's sustained rate (messages per second), when it has one.
    pub rate_per_second: Option<u32>,
    /// Audience entries not planned yet, when known (list audiences).
    pub unplanned: Option<u64>,
    /// When the last message should be handed over at the channel's rate
    /// (running campaigns with a rate only).
    pub eta: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct StatePayload<'a> {
    id: CampaignId,
    name: &'a str,
    state: CampaignState,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counters: Option<CampaignCounters>,
}

/// Placeholders every contact fills by itself.
const CONTACT_VARIABLES: [&str; 4] = ["name", "first_name", "phone", "email"];

/// The reference that makes a recipient's message unique.
fn reference(campaign: CampaignId, seq: u64) -> String {
    format!("campaign:{campaign}:{seq}")
}

impl Crm {
    /// Creates a campaign (`campaign.created`): a draft, or scheduled when
    /// `scheduled_at` is given (it then starts by itself at that time). The
    /// channel is the one named, else the account's default;
    /// [`Error::NotFound`] for an unknown channel or template,
    /// [`Error::Validation`] for bad input, including a template placeholder
    /// that neither `variables` nor the contacts (`name`, `first_name`,
    /// `phone`, `email`) fill.
    pub async fn create_campaign(&self, account: AccountId, input: NewCampaign) -> Result<Campaign> {
        let channel = match input.channel_id {
            Some(id) => self.store.get_channel(account, id).await?,
            None => self.store.default_channel(account).await?.ok_or_else(|| {
                Error::validation("channel_id", "the account has no channel; create one (POST /api/v1/channels)")
            })?,
        };
        let now = self.now();
        let campaign = Campaign::new(account, input, channel.id, now)?;
        let template = self.stored_campaign_template(&campaign).await?;
        let missing: Vec<&str> = template
            .variables
            .iter()
            .map(String::as_str)
            .filter(|v| !CONTACT_VARIABLES.contains(v) && !campaign.variables.contains_key(*v))
            .collect();
        if !missing.is_empty() {
            return Err(Error::validation("variables", format!("the template needs {}", missing.join(", "))));
        }
        let event = self.campaign_event(&campaign, EventType::CAMPAIGN_CREATED, None);
        self.ensure_campaign_consumer().await?;
        self.store.insert_campaign(&campaign, &event).await?;
        if let Some(at) = campaign.scheduled_at {
            self.schedule_campaign_job(&campaign, at).await?;
        }
        Ok(campaign)
    }

    /// One campaign with its counters and ETA.
    pub async fn get_campaign(&self, account: AccountId, id: CampaignId) -> Result<CampaignView> {
        let campaign = self.store.get_campaign(account, id).await?;
        self.campaign_view(campaign).await
    }

    /// A page of the account's campaigns (without counters).
    pub async fn list_campaigns(&self, account: AccountId, page: &PageRequest) -> Result<Page<Campaign>> {
        self.store.list_campaigns(account, page).await
    }

    /// A campaign's recipients in plan order after `after_seq` (at most
    /// `limit`, 1–1000), only those in `state` when given.
    pub async fn list_campaign_recipients(
        &self,
        account: AccountId,
        id: CampaignId,
        state: Option<RecipientState>,
        after_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Recipient>> {
        self.store.list_recipients(account, id, state, after_seq, limit).await
    }

    /// Starts a draft or scheduled campaign now (`campaign.started`).
    /// [`Error::Conflict`] from any other state.
    pub async fn start_campaign(&self, account: AccountId, id: CampaignId) -> Result<Campaign> {
        let c = self.move_campaign(account, id, CampaignState::Running, EventType::CAMPAIGN_STARTED, None).await?;
        self.kick_campaign(&c).await?;
        Ok(c)
    }

    /// Schedules a draft campaign to start at `at` (`campaign.scheduled`).
    /// [`Error::Validation`] when `at` is not in the future,
    /// [`Error::Conflict`] when the campaign is not a draft.
    pub async fn schedule_campaign(&self, account: AccountId, id: CampaignId, at: DateTime<Utc>) -> Result<Campaign> {
        if at <= self.now() {
            return Err(Error::validation("scheduled_at", "must be in the future"));
        }
        let c =
            self.move_campaign(account, id, CampaignState::Scheduled, EventType::CAMPAIGN_SCHEDULED, Some(at)).await?;
        self.schedule_campaign_job(&c, at).await?;
        Ok(c)
    }

    /// Pauses a running campaign (`campaign.paused`): nothing more is handed
    /// to the send pipeline (messages already queued, at most a few seconds'
    /// worth, still go). [`Error::Conflict`] unless it is running.
    pub async fn pause_campaign(&self, account: AccountId, id: CampaignId) -> Result<Campaign> {
        self.move_campaign(account, id, CampaignState::Paused, EventType::CAMPAIGN_PAUSED, None).await
    }

    /// Resumes a paused campaign where it stopped (`campaign.resumed`).
    /// [`Error::Conflict`] unless it is paused.
    pub async fn resume_campaign(&self, account: AccountId, id: CampaignId) -> Result<Campaign> {
        let current = self.store.get_campaign(account, id).await?;
        if current.state != CampaignState::Paused {
            return Err(Error::conflict(
                "campaign",
                format!("a {} campaign cannot be resumed", current.state.as_str()),
            ));
        }
        let c = self.move_campaign(account, id, CampaignState::Running, EventType::CAMPAIGN_RESUMED, None).await?;
        self.kick_campaign(&c).await?;
        Ok(c)
    }

    /// Cancels a campaign that has not ended (`campaign.cancelled`); the
    /// runner then marks its pending recipients skipped (reason
    /// `cancelled`). Messages already queued still go out. [`Error::Conflict`]
    /// when it ended.
    pub async fn cancel_campaign(&self, account: AccountId, id: CampaignId) -> Result<Campaign> {
        let c = self.move_campaign(account, id, CampaignState::Cancelled, EventType::CAMPAIGN_CANCELLED, None).await?;
        self.kick_campaign(&c).await?;
        Ok(c)
    }

    /// Deletes a campaign that is not under way — a draft, or one that
    /// completed or was cancelled — with its recipient list
    /// (`campaign.deleted`). The messages it sent stay in their threads.
    /// [`Error::Conflict`] while it is scheduled, running or paused (cancel
    /// it first); [`Error::NotFound`] when missing.
    pub async fn delete_campaign(&self, account: AccountId, id: CampaignId) -> Result<()> {
        let c = self.store.get_campaign(account, id).await?;
        if matches!(c.state, CampaignState::Scheduled | CampaignState::Running | CampaignState::Paused) {
            return Err(Error::conflict(
                "campaign",
                format!("it is {}; cancel it before deleting it", c.state.as_str()),
            ));
        }
        let event = self.campaign_event(&c, EventType::CAMPAIGN_DELETED, None);
        self.store.delete_campaign(account, id, c.version, &event).await
    }

    /// The campaign runner, to run in a [`Runtime`](crate::workers::Runtime).
    pub fn campaign_runner(&self) -> CampaignRunner {
        CampaignRunner { crm: self.clone() }
    }

    /// The campaign tracker, to run in a [`Runtime`](crate::workers::Runtime)
    /// beside the runner and the dispatcher.
    pub fn campaign_tracker(&self) -> CampaignTracker {
        CampaignTracker { crm: self.clone() }
    }

    /// Plans the next batch of a campaign's audience (up to 1,000 entries)
    /// into recipient rows, as the runner does; returns how many entries it
    /// examined (0 when the audience is exhausted or another planner moved
    /// first). Public for tools and benchmarks.
    pub async fn plan_campaign_batch(&self, account: AccountId, id: CampaignId) -> Result<usize> {
        let c = self.store.get_campaign(account, id).await?;
        let template = self.stored_campaign_template(&c).await?;
        self.plan_batch(&c, &template).await
    }

    // ----- internals ---------------------------------------------------------------

    async fn stored_campaign_template(&self, c: &Campaign) -> Result<Template> {
        crate::domain::template::check_template_ref(&c.template_name, &c.template_language)?;
        self.store
            .find_template(c.account_id, &c.template_name, &c.template_language)
            .await?
            .ok_or(Error::not_found("template"))
    }

    fn campaign_event(&self, c: &Campaign, kind: EventType, counters: Option<CampaignCounters>) -> Event {
        let payload = StatePayload {
            id: c.id,
            name: &c.name,
            state: c.state,
            scheduled_at: c.scheduled_at,
            reason: c.stop_reason.as_deref(),
            counters,
        };
        self.event(c.account_id, kind, &payload)
    }

    async fn move_campaign(
        &self,
        account: AccountId,
        id: CampaignId,
        next: CampaignState,
        kind: EventType,
        scheduled_at: Option<DateTime<Utc>>,
    ) -> Result<Campaign> {
        let mut c = self.store.get_campaign(account, id).await?;
        c.transition(next, self.now())?;
        if scheduled_at.is_some() {
            c.scheduled_at = scheduled_at;
        }
        let counters =
            if next.is_terminal() { Some(self.store.recipient_counts(account, id).await?.into()) } else { None };
        let event = self.campaign_event(&c, kind, counters);
        self.store.update_campaign(&c, &event).await
    }

    async fn campaign_view(&self, campaign: Campaign) -> Result<CampaignView> {
        let counters: CampaignCounters = self.store.recipient_counts(campaign.account_id, campaign.id).await?.into();
        let rate = match self.store.get_channel(campaign.account_id, campaign.channel_id).await {
            Ok(ch) => match ch.pacing.per_second {
                Some(r) => Some(r),
                None => self.channels.messenger(&ch).await.ok().and_then(|m| m.capabilities().max_messages_per_second),
            },
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let unplanned = match (campaign.plan.done, campaign.audience.list_len()) {
            (true, _) => Some(0),
            (false, Some(n)) => Some((n as u64).saturating_sub(campaign.plan.planned)),
            (false, None) => None,
        };
        let eta = match (campaign.state, rate) {
            (CampaignState::Running, Some(r)) if r > 0 => {
                let left = counters.pending + counters.in_flight + unplanned.unwrap_or(0);
                let ms = left.saturating_mul(1000) / u64::from(r);
                Some(self.now() + chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 2)))
            }
            _ => None,
        };
        Ok(CampaignView { campaign, counters, rate_per_second: rate, unplanned, eta })
    }

    /// Registers the tracker's outbox consumer before the first campaign
    /// message can be queued, so no status report is missed.
    async fn ensure_campaign_consumer(&self) -> Result<()> {
        self.store.register_consumer(CAMPAIGN_CONSUMER, &CampaignTracker::filter()).await
    }

    fn campaign_job(&self, c: &Campaign, run_at: DateTime<Utc>) -> Result<Job> {
        let mut job = Job::new(CAMPAIGN_JOB, Some(c.account_id), json!({ "campaign_id": c.id }), run_at, self.now())?;
        job.id = JobId::from_uuid(c.id.into_uuid());
        job.with_unique_key(c.id.to_string())
    }

    /// Schedules the campaign's job at `at` (kept when one exists).
    async fn schedule_campaign_job(&self, c: &Campaign, at: DateTime<Utc>) -> Result<()> {
        match self.store.schedule_job(&self.campaign_job(c, at)?).await {
            Ok(()) | Err(Error::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes the campaign's job due now: a waiting job (scheduled for
    /// later, or idling while paused) is replaced; a job running right now
    /// sees the new state on its next turn.
    async fn kick_campaign(&self, c: &Campaign) -> Result<()> {
        self.ensure_campaign_consumer().await?;
        match self.store.cancel_job(c.account_id, JobId::from_uuid(c.id.into_uuid())).await {
            Ok(()) | Err(Error::NotFound { .. }) | Err(Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
        self.schedule_campaign_job(c, self.now()).await
    }

    /// One turn of the runner for campaign `id`.
    async fn run_campaign(&self, account: AccountId, id: CampaignId) -> Result<Outcome> {
        let mut c = match self.store.get_campaign(account, id).await {
            Ok(c) => c,
            Err(Error::NotFound { .. }) => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        let now = self.now();
        match c.state {
            CampaignState::Draft | CampaignState::Completed => return Ok(Outcome::Done),
            CampaignState::Cancelled => return self.skip_cancelled(&c).await,
            CampaignState::Paused => return Ok(Outcome::Defer { after: IDLE_TICK }),
            CampaignState::Scheduled => {
                if let Some(at) = c.scheduled_at
                    && at > now
                {
                    let wait = (at - now).to_std().unwrap_or_default().min(IDLE_TICK);
                    return Ok(Outcome::Defer { after: wait });
                }
                c = match self
                    .move_campaign(account, id, CampaignState::Running, EventType::CAMPAIGN_STARTED, None)
                    .await
                {
                    Ok(c) => c,
                    // Started, paused or cancelled by hand meanwhile: look again.
                    Err(Error::Conflict { .. }) => return Ok(Outcome::Defer { after: Duration::ZERO }),
                    Err(e) => return Err(e),
                };
            }
            CampaignState::Running => {}
        }
        self.campaign_turn(c).await
    }

    /// One batch of a cancelled campaign's pending recipients marked
    /// skipped (`cancelled`); again until none is left.
    async fn skip_cancelled(&self, c: &Campaign) -> Result<Outcome> {
        const BATCH: u32 = 1000;
        let pending = self.store.pending_recipients(c.account_id, c.id, BATCH).await?;
        let now = self.now();
        for r in &pending {
            let reason = Some(SkipReason::Cancelled.as_str());
            self.store
                .set_recipient_state(c.account_id, c.id, r.seq, RecipientState::Skipped, reason, None, now)
                .await?;
        }
        if pending.len() == BATCH as usize {
            return Ok(Outcome::Defer { after: Duration::ZERO });
        }
        Ok(Outcome::Done)
    }

    /// Stops a running campaign for a reason of its own (`campaign.cancelled`).
    async fn stop_campaign(&self, mut c: Campaign, reason: &str) -> Result<Outcome> {
        tracing::warn!(campaign = %c.id, reason, "campaign stopped");
        c.transition(CampaignState::Cancelled, self.now())?;
        c.stop_reason = Some(reason.to_owned());
        let counters = self.store.recipient_counts(c.account_id, c.id).await?.into();
        let event = self.campaign_event(&c, EventType::CAMPAIGN_CANCELLED, Some(counters));
        match self.store.update_campaign(&c, &event).await {
            Ok(_) => Ok(Outcome::Done),
            Err(Error::Conflict { .. }) => Ok(Outcome::Defer { after: Duration::ZERO }),
            Err(e) => Err(e),
        }
    }

    async fn campaign_turn(&self, c: Campaign) -> Result<Outcome> {
        let account = c.account_id;
        let channel = match self.store.get_channel(account, c.channel_id).await {
            Ok(ch) => ch,
            Err(Error::NotFound { .. }) => return self.stop_campaign(c, "the channel was deleted").await,
            Err(e) => return Err(e),
        };
        if !channel.enabled {
            return Ok(Outcome::Defer { after: IDLE_TICK });
        }
        let template = match self.stored_campaign_template(&c).await {
            Ok(t) => t,
            Err(Error::NotFound { .. }) => return self.stop_campaign(c, "the template was deleted").await,
            Err(e) => return Err(e),
        };
        let rate = match channel.pacing.per_second {
            Some(r) => Some(r),
            None => self.channels.messenger(&channel).await?.capabilities().max_messages_per_second,
        };
        let window = rate.map_or(UNPACED_WINDOW, |r| u64::from(r.saturating_mul(WINDOW_SECS)).clamp(10, 5000));

        let mut counts = self.store.recipient_counts(account, c.id).await?;
        let mut plan_done = c.plan.done;
        if counts.get(RecipientState::Pending) < window && !plan_done {
            self.plan_batch(&c, &template).await?;
            let fresh = self.store.get_campaign(account, c.id).await?;
            plan_done = fresh.plan.done;
            counts = self.store.recipient_counts(account, c.id).await?;
        }
        let in_flight = counts.get(RecipientState::Queued);
        let free = window.saturating_sub(in_flight).min(1000);
        let mut queued = 0;
        if free > 0 && counts.get(RecipientState::Pending) > 0 {
            let batch = self.store.pending_recipients(account, c.id, u32::try_from(free).unwrap_or(1000)).await?;
            queued = batch.len();
            self.queue_recipients(&c, &template, batch).await?;
        }
        if plan_done && queued == 0 && in_flight == 0 && counts.get(RecipientState::Pending) == 0 {
            let mut done = c.clone();
            done.transition(CampaignState::Completed, self.now())?;
            let counters = self.store.recipient_counts(account, c.id).await?.into();
            let event = self.campaign_event(&done, EventType::CAMPAIGN_COMPLETED, Some(counters));
            return match self.store.update_campaign(&done, &event).await {
                Ok(_) => Ok(Outcome::Done),
                Err(Error::Conflict { .. }) => Ok(Outcome::Defer { after: Duration::ZERO }),
                Err(e) => Err(e),
            };
        }
        Ok(Outcome::Defer { after: TICK })
    }

    /// Plans the next batch; returns the entries examined.
    async fn plan_batch(&self, c: &Campaign, template: &Template) -> Result<usize> {
        if c.plan.done {
            return Ok(0);
        }
        let account = c.account_id;
        let from = &c.plan;
        let mut planned: Vec<PlannedRecipient> = Vec::new();
        let mut to = from.clone();
        match &c.audience {
            Audience::Tag { .. } | Audience::Stage { .. } | Audience::Filter { .. } => {
                let mut query = self.audience_query(&c.audience)?;
                query.page = PageRequest { after: from.after.map(ContactId::into_uuid), limit: PLAN_PAGE };
                for _ in 0..PLAN_PAGES {
                    let page = self.store.list_contacts(account, &query).await?;
                    planned.extend(page.items.iter().map(|ct| plan_contact(ct, template, &c.variables)));
                    to.after = page.items.last().map(|ct| ct.id).or(to.after);
                    if page.next_cursor.is_none() {
                        to.done = true;
                        break;
                    }
                    query.page.after = to.after.map(ContactId::into_uuid);
                }
            }
            Audience::Contacts { contact_ids } => {
                let start = usize::try_from(from.planned).unwrap_or(usize::MAX).min(contact_ids.len());
                let end = (start + PLAN_PAGE as usize * PLAN_PAGES).min(contact_ids.len());
                for id in &contact_ids[start..end] {
                    planned.push(match self.store.get_contact(account, *id).await {
                        Ok(ct) => plan_contact(&ct, template, &c.variables),
                        Err(Error::NotFound { .. }) => PlannedRecipient::skipped(None, None, SkipReason::NotFound),
                        Err(e) => return Err(e),
                    });
                }
                to.done = end == contact_ids.len();
            }
            Audience::Phones { phones } => {
                let start = usize::try_from(from.planned).unwrap_or(usize::MAX).min(phones.len());
                let end = (start + PLAN_PAGE as usize * PLAN_PAGES).min(phones.len());
                for text in &phones[start..end] {
                    let phone = match self.parse_phone(text) {
                        Ok(p) => p,
                        Err(_) => {
                            planned.push(PlannedRecipient::skipped(None, Some(text.clone()), SkipReason::InvalidPhone));
                            continue;
                        }
                    };
                    planned.push(match self.store.find_contact_by_phone(account, &phone).await? {
                        Some(ct) => plan_contact(&ct, template, &c.variables),
                        None => PlannedRecipient::skipped(None, Some(phone.to_string()), SkipReason::NotFound),
                    });
                }
                to.done = end == phones.len();
            }
        }
        to.planned = from.planned + planned.len() as u64;
        let n = planned.len();
        let stored = self.store.plan_recipients(account, c.id, from, &to, &planned, self.now()).await?;
        Ok(if stored { n } else { 0 })
    }

    fn audience_query(&self, audience: &Audience) -> Result<ContactQuery> {
        Ok(match audience {
            Audience::Tag { tag } => ContactQuery { tag: Some(tag.clone()), ..Default::default() },
            Audience::Stage { stage } => ContactQuery { lead_stage: Some(*stage), ..Default::default() },
            Audience::Filter { tag, stage, search } => ContactQuery {
                tag: tag.clone(),
                lead_stage: *stage,
                search: search.as_deref().map(ContactSearch::parse).transpose()?.flatten(),
                ..Default::default()
            },
            Audience::Contacts { .. } | Audience::Phones { .. } => ContactQuery::default(),
        })
    }

    /// Hands recipients to the send pipeline, a few at once.
    async fn queue_recipients(&self, c: &Campaign, template: &Template, batch: Vec<Recipient>) -> Result<()> {
        let c = Arc::new(c.clone());
        let template = Arc::new(template.clone());
        let mut tasks = tokio::task::JoinSet::new();
        let mut first_error = None;
        for r in batch {
            if tasks.len() >= QUEUE_CONCURRENCY
                && let Some(res) = tasks.join_next().await
            {
                keep_first(&mut first_error, res);
            }
            let (crm, c, template) = (self.clone(), c.clone(), template.clone());
            tasks.spawn(async move { crm.queue_recipient(&c, &template, &r).await });
        }
        while let Some(res) = tasks.join_next().await {
            keep_first(&mut first_error, res);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Queues one recipient's message (or skips it, or records why it failed).
    async fn queue_recipient(&self, c: &Campaign, template: &Template, r: &Recipient) -> Result<()> {
        let (account, now) = (c.account_id, self.now());
        let set = |state, reason: Option<String>, message| async move {
            self.store.set_recipient_state(account, c.id, r.seq, state, reason.as_deref(), message, now).await
        };
        let Some(contact_id) = r.contact_id else {
            set(RecipientState::Skipped, Some(SkipReason::NotFound.as_str().into()), None).await?;
            return Ok(());
        };
        let contact = match self.store.get_contact(account, contact_id).await {
            Ok(ct) => ct,
            Err(Error::NotFound { .. }) => {
                set(RecipientState::Skipped, Some(SkipReason::NotFound.as_str().into()), None).await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        // The contact may have changed since it was planned (opted out).
        let planned = plan_contact(&contact, template, &c.variables);
        if planned.state == RecipientState::Skipped {
            set(RecipientState::Skipped, planned.reason, None).await?;
            return Ok(());
        }
        let content = match render_for(template.clone(), &contact, c.variables.clone()) {
            Ok(content) => content,
            // Planned as rendering; the contact changed since (no e-mail any more, …).
            Err(Error::Validation { .. }) => {
                set(RecipientState::Skipped, Some(SkipReason::Render.as_str().into()), None).await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let request = SendRequest::new(contact.id, content).via(c.channel_id).reference(reference(c.id, r.seq));
        match self.queue_message(account, request).await {
            Ok(q) => {
                set(RecipientState::Queued, None, Some(q.message.id)).await?;
                // A status reported before the recipient knew its message
                // (a fast dispatcher, or a run that died after queueing).
                let m = self.store.get_message(account, q.message.id).await?;
                if m.status != MessageStatus::Queued {
                    self.follow_message(account, m.id, m.status, m.error.as_ref().map(|e| e.reason.as_str())).await?;
                }
                Ok(())
            }
            Err(Error::NotFound { .. }) => {
                set(RecipientState::Skipped, Some(SkipReason::NotFound.as_str().into()), None).await.map(|_| ())
            }
            Err(e @ Error::Validation { .. }) => {
                set(RecipientState::Failed, Some(e.to_string()), None).await.map(|_| ())
            }
            Err(e) => Err(e),
        }
    }

    /// Moves the recipient of message `id` with its status.
    async fn follow_message(
        &self,
        account: AccountId,
        id: MessageId,
        status: MessageStatus,
        reason: Option<&str>,
    ) -> Result<bool> {
        let state = RecipientState::of_message(status);
        let reason = if state == RecipientState::Failed { reason } else { None };
        self.store.set_recipient_state_by_message(account, id, state, reason, self.now()).await
    }

    /// The tracker's handler.
    async fn track(&self, event: &Event) -> Result<()> {
        let account = event.account_id;
        if event.event_type == EventType::MESSAGE_STATUS_UPDATED {
            let id = event.payload["message_id"].as_str().and_then(|s| s.parse::<MessageId>().ok());
            let status = serde_json::from_value::<MessageStatus>(event.payload["status"].clone()).ok();
            if let (Some(id), Some(status)) = (id, status) {
                let reason = event.payload["error"]["reason"].as_str();
                self.follow_message(account, id, status, reason).await?;
            }
        } else if event.event_type == EventType::MESSAGE_RECEIVED
            && let Some(contact) =
                event.payload["message"]["contact_id"].as_str().and_then(|s| s.parse::<ContactId>().ok())
        {
            self.store.record_recipient_reply(account, contact, event.occurred_at).await?;
        }
        Ok(())
    }
}

fn keep_first(first: &mut Option<Error>, res: std::result::Result<Result<()>, tokio::task::JoinError>) {
    let err = match res {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(e) => Error::Storage { transient: true, message: format!("a queueing task stopped: {e}"), source: None },
    };
    first.get_or_insert(err);
}

/// Runs campaigns: the job worker of [`CAMPAIGN_JOB`].
#[derive(Debug, Clone)]
pub struct CampaignRunner {
    crm: Crm,
}

impl CampaignRunner {
    /// Options that suit it: quick polls (a campaign's job comes back every
    /// quarter second), and many attempts before a storage outage buries a
    /// campaign's job.
    pub fn options(&self) -> WorkerOptions {
        WorkerOptions {
            batch: 16,
            concurrency: 8,
            poll: Duration::from_millis(50),
            max_poll: Duration::from_millis(250),
            max_attempts: 1000,
            backoff: Backoff { max: Duration::from_secs(60), ..Backoff::default() },
            ..WorkerOptions::default()
        }
    }
}

#[async_trait]
impl JobWorker for CampaignRunner {
    fn kind(&self) -> &str {
        CAMPAIGN_JOB
    }

    async fn run(&self, job: &Job) -> Outcome {
        let id = job.payload["campaign_id"].as_str().and_then(|s| s.parse::<CampaignId>().ok());
        let (Some(account), Some(id)) = (job.account_id, id) else {
            return Outcome::Fail { error: "the campaign job names no campaign".into() };
        };
        match self.crm.run_campaign(account, id).await {
            Ok(o) => o,
            Err(e) => Outcome::retry(e.to_string()),
        }
    }
}

/// Keeps recipients in step with their messages: the outbox consumer
/// [`CAMPAIGN_CONSUMER`].
#[derive(Debug, Clone)]
pub struct CampaignTracker {
    crm: Crm,
}

impl CampaignTracker {
    /// The events it consumes: `message.status_updated` and `message.received`.
    pub fn filter() -> EventFilter {
        EventFilter::only([EventType::MESSAGE_STATUS_UPDATED.as_str(), EventType::MESSAGE_RECEIVED.as_str()])
            .unwrap_or_default()
    }

    /// Options that suit it: large batches (one short write per event).
    pub fn options(&self) -> WorkerOptions {
        WorkerOptions { batch: 128, concurrency: 16, ..WorkerOptions::default() }
    }
}

#[async_trait]
impl EventWorker for CampaignTracker {
    fn name(&self) -> &str {
        CAMPAIGN_CONSUMER
    }

    fn events(&self) -> EventFilter {
        Self::filter()
    }

    async fn handle(&self, event: &Event, _attempt: u32, _previous_error: Option<&str>) -> Outcome {
        match self.crm.track(event).await {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::retry(e.to_string()),
        }
    }
}
