//! `MemoryStore`: every store port over one mutex-guarded [`State`].
//!
//! This module holds the state, the helpers every aggregate shares (event
//! append with outbox fan-out, paging) and the health probe; each aggregate's
//! port is implemented in its own module (`accounts`, `contacts`, `messages`,
//! `templates`, `events`, `channels`, `jobs`, `sessions`, `campaigns`, `webhooks`,
//! `billing`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::{
    Account, AccountId, ApiKey, ApiKeyId, Campaign, CampaignId, Channel, ChannelId, Clock, Contact, ContactId, Error,
    Event, EventFilter, EventId, Health, HealthCheck, Job, JobId, Message, MessageId, Page, PageRequest, Phone, Result,
    Session, SessionId, SystemClock, Template, TemplateId, User, UserId,
};

mod accounts;
mod assistant;
mod automations;
mod billing;
mod campaigns;
mod channels;
mod connections;
mod contacts;
mod events;
mod groups;
mod idempotency;
mod inbox;
mod jobs;
mod media;
mod messages;
mod oauth;
mod sequences;
mod sessions;
mod templates;
mod webhooks;
mod whatsapp_ids;

/// One event queued for one consumer.
#[derive(Debug, Clone)]
struct OutboxItem {
    due_at: DateTime<Utc>,
    lease: Option<(uuid::Uuid, DateTime<Utc>)>,
    attempt: u32,
    last_error: Option<String>,
    /// Set when dead-lettered: when, and why.
    dead: Option<(DateTime<Utc>, String)>,
}

/// A job and its lease.
#[derive(Debug, Clone)]
struct JobEntry {
    job: Job,
    lease: Option<(uuid::Uuid, DateTime<Utc>)>,
}

/// Everything the store holds, behind one mutex.
#[derive(Debug, Default)]
struct State {
    accounts: BTreeMap<AccountId, Account>,
    users: BTreeMap<UserId, User>,
    api_keys: BTreeMap<ApiKeyId, ApiKey>,
    sessions: BTreeMap<SessionId, Session>,
    contacts: BTreeMap<ContactId, Contact>,
    phones: HashMap<(AccountId, Phone), ContactId>,
    messages: BTreeMap<MessageId, Message>,
    provider_ids: HashMap<(AccountId, String), MessageId>,
    client_refs: HashMap<(AccountId, String), MessageId>,
    templates: BTreeMap<TemplateId, Template>,
    events: BTreeMap<EventId, Event>,
    consumers: BTreeMap<String, EventFilter>,
    outbox: BTreeMap<(String, EventId), OutboxItem>,
    channels: BTreeMap<ChannelId, Channel>,
    jobs: BTreeMap<JobId, JobEntry>,
    campaigns: BTreeMap<CampaignId, Campaign>,
    recipients: BTreeMap<CampaignId, campaigns::Recipients>,
    /// Which recipient a message was queued for.
    recipient_messages: HashMap<(AccountId, MessageId), (CampaignId, u64)>,
    endpoints: BTreeMap<crate::WebhookEndpointId, crate::WebhookEndpoint>,
    deliveries: BTreeMap<crate::WebhookDeliveryId, crate::WebhookDelivery>,
    attempts: HashMap<crate::WebhookDeliveryId, Vec<crate::WebhookAttempt>>,
    /// Channel session leases: owner and expiry.
    channel_leases: HashMap<ChannelId, (String, DateTime<Utc>)>,
    /// Assistant usage rows, auto-reply settings by (account, channel), drafts.
    ai_usage: Vec<crate::domain::assistant::AiUsage>,
    auto_replies: BTreeMap<(AccountId, Option<ChannelId>), crate::domain::assistant::AutoReplySetting>,
    ai_drafts: BTreeMap<crate::AiDraftId, crate::domain::assistant::AiDraft>,
    ai_analyses: BTreeMap<MessageId, crate::domain::assistant::MessageAnalysis>,
    /// Billing: provider events by id, customers by account, subscriptions by provider id.
    billing_events: BTreeMap<String, crate::domain::billing::BillingEvent>,
    billing_customers: BTreeMap<AccountId, String>,
    billing_subscriptions: BTreeMap<String, crate::domain::billing::Subscription>,
    media: BTreeMap<crate::MediaId, crate::Media>,
    /// Automation rules, versions, runs, scoring models and score history.
    automation: automations::AutomationState,
    sequences: BTreeMap<crate::SequenceId, crate::Sequence>,
    enrolments: BTreeMap<crate::EnrolmentId, crate::Enrolment>,
    /// The active enrolment of each contact in each sequence.
    active_enrolments: HashMap<(crate::SequenceId, ContactId), crate::EnrolmentId>,
    /// OAuth grants, authorizations in flight and external links.
    oauth: oauth::OAuthState,
    /// Connections to outside providers by (account, provider kind).
    connections:
        BTreeMap<(AccountId, crate::domain::connection::ConnectionKind), crate::domain::connection::Connection>,
    /// WhatsApp groups and group threads.
    groups: groups::GroupState,
    /// What WhatsApp channels learned of phones (LIDs, confirmed ids), by (channel, phone).
    whatsapp_ids: HashMap<(ChannelId, Phone), crate::WhatsAppIdentity>,
    /// Each touched thread's read state and assignment, by contact.
    threads: BTreeMap<ContactId, crate::domain::inbox::ThreadState>,
    /// Claimed idempotency keys by (account, scope, key).
    idempotency_keys: HashMap<(AccountId, String, String), crate::StoredIdempotencyKey>,
}

impl State {
    /// Event ids are unique: a mutation carrying a stored event's id is refused.
    fn ensure_new(&self, event: &Event) -> Result<()> {
        if self.events.contains_key(&event.id) {
            return Err(Error::conflict("event", "id already exists"));
        }
        Ok(())
    }

    fn append(&mut self, event: &Event) {
        self.events.insert(event.id, event.clone());
        for (c, filter) in &self.consumers {
            if !filter.matches(&event.event_type) {
                continue;
            }
            self.outbox.insert(
                (c.clone(), event.id),
                OutboxItem { due_at: DateTime::<Utc>::MIN_UTC, lease: None, attempt: 0, last_error: None, dead: None },
            );
        }
    }

    fn contact(&self, account: AccountId, id: ContactId) -> Result<&Contact> {
        self.contacts.get(&id).filter(|c| c.account_id == account).ok_or(Error::not_found("contact"))
    }

    fn message_mut(&mut self, account: AccountId, id: MessageId) -> Result<&mut Message> {
        self.messages.get_mut(&id).filter(|m| m.account_id == account).ok_or(Error::not_found("message"))
    }
}

/// Every store port in memory. Clones share the same data.
///
/// It follows the same contracts as the SQL stores (checked by the same
/// conformance suites), so the server runs on it unchanged; data lives as long
/// as the process.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store using the system clock for outbox leases.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store using `clock` for outbox leases.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self { state: Arc::default(), clock }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `now + d`, saturating (durations are bounded nowhere else).
fn deadline(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The page of `items` (in id order) after the request's cursor.
fn page_of<T: Clone>(items: impl Iterator<Item = T>, page: &PageRequest, id_of: impl Fn(&T) -> uuid::Uuid) -> Page<T> {
    let fetched: Vec<T> =
        items.filter(|i| page.after.is_none_or(|a| id_of(i) > a)).take(page.limit as usize + 1).collect();
    Page::from_overfetch(fetched, page.limit, id_of)
}

#[async_trait]
impl HealthCheck for MemoryStore {
    fn name(&self) -> &str {
        "database"
    }

    async fn check(&self) -> Health {
        Health::healthy(Duration::ZERO)
    }
}
