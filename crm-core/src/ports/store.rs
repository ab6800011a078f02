//! The store ports: persistence split by aggregate, each mutation writing its
//! [`Event`] in the same transaction (the outbox).
//!
//! Every method that touches tenant data takes the [`AccountId`] first, and a
//! row of another account behaves exactly as a missing row ([`Error::NotFound`]).
//! Event ids are unique: a mutation whose event id is already in the log is
//! [`Error::Conflict`] and changes nothing.
//! Conformance suites for all of this live in `crm_core::testing::store`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::time::Duration;

use crate::{
    Account, AccountId, ApiKey, ApiKeyId, CampaignStore, ChannelId, ChannelStore, Contact, ContactId, ContactQuery,
    Email, Event, EventFilter, EventId, HealthCheck, JobStore, Message, MessageId, Page, PageRequest, Phone,
    QueueStats, Result, Role, Session, SessionId, StatusUpdate, Template, TemplateId, User, UserId,
};

#[allow(unused_imports)]
use crate::Error;

/// Accounts, users and API keys.
#[async_trait]
pub trait AccountStore: Send + Sync + Debug + 'static {
    /// Stores a new account and its `event`.
    async fn create_account(&self, account: &Account, event: &Event) -> Result<()>;

    /// Stores a new account and its first API key (`key` belongs to
    /// `account`) with their events (`account.created`, then
    /// `api_key.created`) in one transaction: both or neither.
    /// [`Error::Conflict`] when the account id or the key's prefix is taken.
    async fn create_account_with_key(&self, account: &Account, key: &ApiKey, events: &[Event; 2]) -> Result<()>;

    /// The account; [`Error::NotFound`] when missing.
    async fn get_account(&self, id: AccountId) -> Result<Account>;

    /// Stores `account`'s name and time zone (its id and creation time
    /// never change) with `event`, and returns the stored account.
    /// [`Error::NotFound`] when missing.
    async fn update_account(&self, account: &Account, event: &Event) -> Result<Account>;

    /// Stores a new user. [`Error::Conflict`] when the e-mail is taken in any account.
    async fn create_user(&self, user: &User, event: &Event) -> Result<()>;

    /// A user of the account; [`Error::NotFound`] when missing or in another account.
    async fn get_user(&self, account: AccountId, id: UserId) -> Result<User>;

    /// The user with this login e-mail, in any account (for login).
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>>;

    /// Users of the account, by id.
    async fn list_users(&self, account: AccountId) -> Result<Vec<User>>;

    /// Stores a new API key. [`Error::Conflict`] when its prefix is taken.
    async fn create_api_key(&self, key: &ApiKey, event: &Event) -> Result<()>;

    /// The key with this prefix, in any account (for authentication).
    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>>;

    /// Keys of the account (revoked ones included), by id.
    async fn list_api_keys(&self, account: AccountId) -> Result<Vec<ApiKey>>;

    /// Sets `revoked_at` and records `event`, when the key's role is at most
    /// `up_to` (the caller's role: nobody revokes a more powerful key), in one
    /// statement. [`Error::NotFound`] when the key is missing or in another
    /// account, [`Error::Forbidden`] when its role is above `up_to`; revoking
    /// a revoked key keeps the first time, writes no event and returns the key.
    async fn revoke_api_key(
        &self,
        account: AccountId,
        id: ApiKeyId,
        up_to: Role,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<ApiKey>;
}

/// Dashboard login sessions (their own table, not API keys). Sessions
/// record no events: a login is not a change to the account's data.
#[async_trait]
pub trait SessionStore: Send + Sync + Debug + 'static {
    /// Stores a new session. [`Error::Conflict`] when its prefix is taken.
    async fn create_session(&self, session: &Session) -> Result<()>;

    /// The session with this prefix, in any account (for authentication).
    async fn find_session_by_prefix(&self, prefix: &str) -> Result<Option<Session>>;

    /// The sessions of `user` in `account` that have not expired or ended
    /// by `now`, newest first.
    async fn list_sessions(&self, account: AccountId, user: UserId, now: DateTime<Utc>) -> Result<Vec<Session>>;

    /// Ends session `id` of `user` in `account` at `at` (logout); ending an
    /// ended session keeps the first time. [`Error::NotFound`] when it is
    /// missing, in another account or another user's.
    async fn end_session(&self, account: AccountId, user: UserId, id: SessionId, at: DateTime<Utc>) -> Result<Session>;

    /// Deletes every session that expired or ended before `before`; returns how many.
    async fn delete_expired_sessions(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// Contacts.
#[async_trait]
pub trait ContactStore: Send + Sync + Debug + 'static {
    /// Stores a new contact (`version` 0) and its event. [`Error::Conflict`]
    /// when the account already has a contact with this phone.
    async fn insert_contact(&self, contact: &Contact, event: &Event) -> Result<()>;

    /// Replaces a contact whose stored `version` equals `contact.version`,
    /// storing `version + 1`, and records `event`. Returns the stored contact.
    /// `created_at`, `last_inbound_at` and `last_outbound_at` keep their stored
    /// values: activity times are moved only by [`MessageStore::insert_message`],
    /// so an edit made from an older copy never closes a messaging window.
    /// [`Error::NotFound`] when missing; [`Error::Conflict`] when the version is
    /// stale or the new phone belongs to another contact of the account.
    async fn update_contact(&self, contact: &Contact, event: &Event) -> Result<Contact>;

    /// Deletes a contact with its messages and records `event`, and erases
    /// the contact's personal data from the account's event log in the same
    /// transaction: every event that [`erased_payload`] finds carrying the
    /// contact gets that payload (ids only), so outbox deliveries still
    /// queued, dead letters and `/events` readers see no name, phone, e-mail
    /// or message text of it. [`Error::NotFound`] when missing.
    async fn delete_contact(&self, account: AccountId, id: ContactId, event: &Event) -> Result<()>;

    /// One contact; [`Error::NotFound`] when missing.
    async fn get_contact(&self, account: AccountId, id: ContactId) -> Result<Contact>;

    /// The contact with this (canonical) phone.
    async fn find_contact_by_phone(&self, account: AccountId, phone: &Phone) -> Result<Option<Contact>>;

    /// Contacts matching `query` ([`ContactQuery::matches`]) in id order,
    /// after the page cursor. Pages are stable under concurrent inserts: a
    /// contact is never skipped or repeated because another was added.
    async fn list_contacts(&self, account: AccountId, query: &ContactQuery) -> Result<Page<Contact>>;

    /// Inserts many new contacts of one account in batches. Each rejected row
    /// (phone already in the account or repeated within `contacts`) is reported
    /// by its index; the others are stored, each with its event from `events`
    /// (same index). Storage failures abort the whole import: nothing is
    /// written. [`Error::Validation`] when the two slices differ in length or a
    /// contact belongs to another account.
    async fn import_contacts(&self, account: AccountId, contacts: &[Contact], events: &[Event])
    -> Result<ImportReport>;
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    /// Rows stored.
    pub imported: usize,
    /// Rows refused, with their index in the input and why.
    pub rejected: Vec<RejectedRow>,
}

/// One refused import row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RejectedRow {
    /// Position in the input (0-based).
    pub index: usize,
    /// Why.
    pub reason: String,
}

/// Messages.
#[async_trait]
pub trait MessageStore: Send + Sync + Debug + 'static {
    /// Stores a message and its event, and moves the contact's
    /// `last_inbound_at`/`last_outbound_at` (by direction) forward to
    /// `created_at` in the same transaction (a store may skip an outbound
    /// move while another transaction is writing the contact's row, e.g. a
    /// concurrent send to the same contact moving it to its own time, so
    /// sends to one contact need not queue on that row; the time never moves
    /// backwards). [`Error::NotFound`] when the
    /// contact is missing; [`Error::Conflict`] when the account already has a
    /// message with this provider id or this client reference. The
    /// message's `channel_id` and `client_reference` are stored as given.
    async fn insert_message(&self, message: &Message, event: &Event) -> Result<()>;

    /// One message; [`Error::NotFound`] when missing.
    async fn get_message(&self, account: AccountId, id: MessageId) -> Result<Message>;

    /// The message with this provider id.
    async fn find_message_by_provider_id(
        &self,
        account: AccountId,
        provider_message_id: &str,
    ) -> Result<Option<Message>>;

    /// Applies `update` atomically when the stored status is one of
    /// [`MessageStatus::predecessors`](crate::MessageStatus::predecessors) of
    /// `update.status` (setting the matching timestamp, the error for
    /// `failed`, and the provider id when none is stored), then records
    /// `event`. Returns the new message, or `None` (and no event) when the
    /// transition is not allowed. [`Error::NotFound`] when missing;
    /// [`Error::Conflict`] when the provider id belongs to another message.
    async fn update_message_status(
        &self,
        account: AccountId,
        id: MessageId,
        update: &StatusUpdate,
        event: &Event,
    ) -> Result<Option<Message>>;

    /// The message the account stored with this client reference
    /// ([`Message::client_reference`], an `Idempotency-Key`).
    async fn find_message_by_client_reference(&self, account: AccountId, reference: &str) -> Result<Option<Message>>;

    /// A contact's thread, oldest first (id order), after the page cursor.
    /// [`Error::NotFound`] when the contact is missing.
    async fn list_thread(&self, account: AccountId, contact: ContactId, page: &PageRequest) -> Result<Page<Message>>;

    /// When the contact last wrote on each channel: the latest `created_at`
    /// of its inbound messages per `channel_id` (`None`: messages recorded
    /// without a channel), in no particular order; empty when it never
    /// wrote (or the contact is missing).
    async fn last_inbound_by_channel(
        &self,
        account: AccountId,
        contact: ContactId,
    ) -> Result<Vec<(Option<ChannelId>, DateTime<Utc>)>>;

    /// Sets what `annotation` carries (`attachment`, `pricing`, a fallback
    /// swap; fields left `None` keep their stored value) on a message and
    /// records `event`, in one transaction; returns the message as stored
    /// afterwards. The status and everything else stay. A fallback swap
    /// replaces the content (and kind) and records the fallback only while
    /// the message is `queued`: [`Error::Conflict`] (nothing written, no
    /// event) when it has left `queued`. [`Error::NotFound`] when missing.
    async fn annotate_message(
        &self,
        account: AccountId,
        id: MessageId,
        annotation: &MessageAnnotation,
        event: &Event,
    ) -> Result<Message>;
}

/// What [`MessageStore::annotate_message`] sets on a message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageAnnotation {
    /// The media file fetched for an inbound message.
    pub attachment: Option<crate::Attachment>,
    /// What the provider says the message costs.
    pub pricing: Option<crate::Pricing>,
    /// A queued free-form message switched to its fallback template at
    /// dispatch, because the customer-service window closed while it waited.
    pub fallback: Option<FallbackSwap>,
}

/// The content a queued message falls back to, and the record of why
/// ([`MessageAnnotation::fallback`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FallbackSwap {
    /// The template message sent instead.
    pub content: crate::MessageContent,
    /// Which template, why, and the original content.
    pub fallback: crate::Fallback,
}

/// Templates.
#[async_trait]
pub trait TemplateStore: Send + Sync + Debug + 'static {
    /// Stores a template and its event. [`Error::Conflict`] when the account has
    /// one with the same name and language.
    async fn insert_template(&self, template: &Template, event: &Event) -> Result<()>;

    /// Replaces a template and records `event`. [`Error::NotFound`] when
    /// missing; [`Error::Conflict`] on a name/language clash.
    async fn update_template(&self, template: &Template, event: &Event) -> Result<()>;

    /// Deletes a template and records `event`. [`Error::NotFound`] when missing.
    async fn delete_template(&self, account: AccountId, id: TemplateId, event: &Event) -> Result<()>;

    /// One template; [`Error::NotFound`] when missing.
    async fn get_template(&self, account: AccountId, id: TemplateId) -> Result<Template>;

    /// The template with this name and language.
    async fn find_template(&self, account: AccountId, name: &str, language: &str) -> Result<Option<Template>>;

    /// Templates in id order after the page cursor.
    async fn list_templates(&self, account: AccountId, page: &PageRequest) -> Result<Page<Template>>;
}

/// The event log and its outbox.
///
/// Events are appended only by the other stores' mutations. Consumers
/// (webhooks, automation, analytics) are registered by name; from then on
/// every appended event is also queued for each registered consumer, in the
/// same transaction. A consumer claims queued items with a lease: while the
/// lease holds no other process gets the item; an item is gone once acked;
/// an item whose lease expired is handed out again (at-least-once delivery).
///
/// Reading the log after a cursor (`list_events`, `read_all_events`) is a
/// feed for people and dashboards: event ids are minted before their
/// transaction commits, so with concurrent writers an event can become
/// visible after a later-numbered one, and a reader at the very head of the
/// log may step past it. Anything that must see every event (webhooks,
/// automation) uses the outbox, which has no such gap.
#[async_trait]
pub trait EventStore: Send + Sync + Debug + 'static {
    /// The account's events after `after` (exclusive) in id order, at most `limit` (1..=1000).
    async fn list_events(&self, account: AccountId, after: Option<EventId>, limit: u32) -> Result<Vec<Event>>;

    /// All accounts' events after `after`, in id order, at most `limit` (1..=1000).
    async fn read_all_events(&self, after: Option<EventId>, limit: u32) -> Result<Vec<Event>>;

    /// Registers a consumer with the events it wants (idempotent;
    /// registering again replaces the filter). Events appended afterwards
    /// that pass `filter` are queued for it, in the appending transaction.
    async fn register_consumer(&self, consumer: &str, filter: &EventFilter) -> Result<()>;

    /// The registered consumers, by name.
    async fn list_consumers(&self) -> Result<Vec<String>>;

    /// Claims up to `limit` (1..=1000) of the consumer's queued items that are
    /// due and not leased, oldest event first, leasing them for `lease`.
    /// Concurrent callers never receive the same item while its lease holds.
    async fn claim(&self, consumer: &str, limit: u32, lease: Duration) -> Result<Vec<Claim>>;

    /// Removes a claimed item. [`Error::Conflict`] when the lease was lost
    /// (expired and claimed again by someone else), [`Error::NotFound`] when the
    /// item no longer exists.
    async fn ack(&self, claim: &ClaimToken) -> Result<()>;

    /// Removes several claimed items, in one round trip where the store can
    /// (the runtime gathers the items its handlers finish at about the same
    /// time). Returns, for each token in order, whether it was removed:
    /// `false` where [`EventStore::ack`] would answer [`Error::Conflict`] or
    /// [`Error::NotFound`] (the lease was lost, the item is gone). Any other
    /// error fails the call; items already removed stay removed, and acking
    /// them again answers `false`.
    async fn ack_many(&self, claims: &[ClaimToken]) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(claims.len());
        for c in claims {
            out.push(settled_or_lost(self.ack(c).await)?);
        }
        Ok(out)
    }

    /// Gives a claimed item back, due again after `retry_in`, recording `error`
    /// (its first [`MAX_NACK_ERROR_CHARS`] characters).
    /// Same errors as [`EventStore::ack`].
    async fn nack(&self, claim: &ClaimToken, retry_in: Duration, error: &str) -> Result<()>;

    /// Items queued for the consumer (leased or not, dead letters excluded):
    /// the queue depth.
    async fn pending(&self, consumer: &str) -> Result<u64>;

    /// Extends a claim's lease to `lease` from now (a worker still running
    /// its handler). Same errors as [`EventStore::ack`].
    async fn renew(&self, claim: &ClaimToken, lease: Duration) -> Result<()>;

    /// Gives a claimed item back, due again after `retry_in`, without
    /// counting the claim as an attempt (`attempt` goes back down by one;
    /// `last_error` is kept). Same errors as [`EventStore::ack`].
    async fn release(&self, claim: &ClaimToken, retry_in: Duration) -> Result<()>;

    /// Moves a claimed item to the consumer's dead letters, recording
    /// `error` (its first [`MAX_NACK_ERROR_CHARS`] characters) and the time:
    /// it is kept, never claimed, not counted by `pending`, until replayed.
    /// Same errors as [`EventStore::ack`].
    async fn bury(&self, claim: &ClaimToken, error: &str) -> Result<()>;

    /// The consumer's dead letters of `account`'s events, in event id order
    /// after `after`, at most `limit` (1..=1000).
    async fn list_dead_letters(
        &self,
        consumer: &str,
        account: AccountId,
        after: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>>;

    /// Queues a dead letter again, due now with its attempts reset (its
    /// error stays the item's last error). [`Error::NotFound`] when the
    /// consumer has no dead letter of `account`'s with this event id.
    async fn replay_dead_letter(&self, consumer: &str, account: AccountId, event: EventId) -> Result<()>;

    /// Queues again every dead letter of `account`'s events that died at or
    /// after `since`; returns how many.
    async fn replay_dead_letters_since(&self, consumer: &str, account: AccountId, since: DateTime<Utc>) -> Result<u64>;

    /// Depth, items due now, the oldest due time and dead letters of a consumer.
    async fn queue_stats(&self, consumer: &str) -> Result<QueueStats>;
}

/// An outbox item that gave up: kept for inspection and replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetter {
    /// The consumer it was queued for.
    pub consumer: String,
    /// The event.
    pub event: Event,
    /// Claims it took.
    pub attempts: u32,
    /// Why it gave up.
    pub error: String,
    /// When it gave up.
    pub dead_at: DateTime<Utc>,
}

/// Identifies one lease on one outbox item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClaimToken {
    /// The consumer.
    pub consumer: String,
    /// The event.
    pub event_id: EventId,
    /// Unique per claim; a later claim of the same item gets a new one.
    pub lease_id: uuid::Uuid,
}

/// An outbox item handed to a consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// Pass to [`EventStore::ack`] or [`EventStore::nack`].
    pub token: ClaimToken,
    /// The event.
    pub event: Event,
    /// 1 on the first claim, +1 each time it is claimed again.
    pub attempt: u32,
    /// The error recorded by the last `nack` (or by the `bury` of a
    /// dead letter since replayed).
    pub last_error: Option<String>,
}

/// Every store port in one object, plus its health probe.
///
/// Adapters implement the parts; this trait is implemented for them
/// automatically. Use as `Arc<dyn Store>`; upcast to a part with
/// `let contacts: Arc<dyn ContactStore> = store.clone();`.
pub trait Store:
    AccountStore
    + SessionStore
    + ContactStore
    + MessageStore
    + TemplateStore
    + EventStore
    + ChannelStore
    + JobStore
    + CampaignStore
    + crate::WebhookStore
    + crate::ports::assistant::AssistantStore
    + crate::BillingStore
    + crate::MediaRecordStore
    + crate::AutomationStore
    + crate::SequenceStore
    + crate::OAuthStore
    + crate::ConnectionStore
    + crate::GroupStore
    + crate::WhatsAppIdStore
    + crate::InboxStore
    + crate::IdempotencyStore
    + HealthCheck
{
}

impl<T> Store for T where
    T: AccountStore
        + SessionStore
        + ContactStore
        + MessageStore
        + TemplateStore
        + EventStore
        + ChannelStore
        + JobStore
        + CampaignStore
        + crate::WebhookStore
        + crate::ports::assistant::AssistantStore
        + crate::BillingStore
        + crate::MediaRecordStore
        + crate::AutomationStore
        + crate::SequenceStore
        + crate::OAuthStore
        + crate::ConnectionStore
        + crate::GroupStore
        + crate::WhatsAppIdStore
        + crate::InboxStore
        + crate::IdempotencyStore
        + HealthCheck
{
}

// ----- argument checks every adapter makes ----------------------------------------
//
// The checks below belong to the port, not to a backend: every adapter calls
// them first, before it touches its data, so all adapters refuse the same
// arguments with the same error.

/// Checks that `event` is written for `account`, the account of the data a
/// mutation touches: [`Error::Validation`] (field `event`) otherwise.
///
/// Every store mutation taking an [`Event`] calls this first.
///
/// ```
/// use crm_core::{AccountId, Event, EventType};
/// use crm_core::ports::store::check_event_account;
///
/// let account = AccountId::new();
/// let event = Event::new(account, EventType::ACCOUNT_CREATED, &serde_json::json!({}), chrono::Utc::now());
/// assert!(check_event_account(account, &event).is_ok());
/// assert!(check_event_account(AccountId::new(), &event).is_err());
/// ```
pub fn check_event_account(account: AccountId, event: &Event) -> Result<()> {
    if event.account_id != account {
        return Err(crate::Error::validation("event", "belongs to another account"));
    }
    Ok(())
}

/// Checks the arguments of [`ContactStore::import_contacts`]: one event per
/// contact, and every contact and event of `account`. [`Error::Validation`]
/// otherwise (nothing may be written then).
pub fn check_import(account: AccountId, contacts: &[Contact], events: &[Event]) -> Result<()> {
    if contacts.len() != events.len() {
        return Err(crate::Error::validation("events", "must have one event per contact"));
    }
    for (c, e) in contacts.iter().zip(events) {
        if c.account_id != account {
            return Err(crate::Error::validation("contacts", "a contact belongs to another account"));
        }
        check_event_account(account, e)?;
    }
    Ok(())
}

/// Longest `error` [`EventStore::nack`] keeps, in characters: a longer one is
/// cut to its first `MAX_NACK_ERROR_CHARS` characters.
pub const MAX_NACK_ERROR_CHARS: usize = 1000;

/// A single settlement's answer as the batch settlements report it:
/// `Ok(true)` when it settled, `Ok(false)` when the lease was lost or the item
/// is gone ([`Error::Conflict`], [`Error::NotFound`]), the error otherwise.
pub fn settled_or_lost(r: Result<()>) -> Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(Error::Conflict { .. } | Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Checks a `limit` argument of the event methods.
pub fn check_event_limit(limit: u32) -> Result<()> {
    if !(1..=1000).contains(&limit) {
        return Err(crate::Error::validation("limit", "must be between 1 and 1000"));
    }
    Ok(())
}

/// Checks a consumer name: 1–64 of `[a-z0-9_.-]`.
pub fn check_consumer_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if !ok {
        return Err(crate::Error::validation("consumer", "must be 1 to 64 of a-z, 0-9, _ . -"));
    }
    Ok(())
}

/// [`AccountStore::revoke_api_key`]'s refusal of a key above the caller's role.
pub fn revoke_forbidden(key_role: Role) -> Error {
    Error::Forbidden { reason: format!("revoking this key needs the {} role", key_role.as_str()) }
}

/// The payload an event keeps after contact `contact` is erased, when the
/// event carries it (`contact.*` events whose `id` is the contact; events
/// whose `contact_id`, `contact.id` or `message.contact_id` is); `None` for
/// every other event. Only ids, the message status and `"redacted": true`
/// are kept: the event, its type, time and order stay, so cursors, counts
/// and the dispatcher (which reads `message.id`, and finds the message
/// gone) work as before.
pub fn erased_payload(event_type: &str, payload: &serde_json::Value, contact: ContactId) -> Option<serde_json::Value> {
    let cid = contact.to_string();
    let is = |v: &serde_json::Value| v.as_str() == Some(cid.as_str());
    let carries = (event_type.starts_with("contact.") && is(&payload["id"]))
        || is(&payload["contact_id"])
        || is(&payload["contact"]["id"])
        || is(&payload["message"]["contact_id"]);
    if !carries {
        return None;
    }
    let mut kept = serde_json::Map::new();
    kept.insert("contact_id".into(), serde_json::Value::String(cid.clone()));
    kept.insert("redacted".into(), serde_json::Value::Bool(true));
    for key in ["id", "message_id", "status"] {
        if let Some(v) = payload.get(key).filter(|v| v.is_string()) {
            kept.insert(key.into(), v.clone());
        }
    }
    if let Some(id) = payload["message"].get("id").filter(|v| v.is_string()) {
        kept.insert("message".into(), serde_json::json!({ "id": id, "contact_id": cid }));
    }
    Some(serde_json::Value::Object(kept))
}

/// [`AccountStore::create_account_with_key`]'s argument checks: both events
/// and the key belong to the account.
pub fn check_account_with_key(account: &Account, key: &ApiKey, events: &[Event; 2]) -> Result<()> {
    check_event_account(account.id, &events[0])?;
    check_event_account(account.id, &events[1])?;
    if key.account_id != account.id {
        return Err(Error::validation("key", "must belong to the new account"));
    }
    Ok(())
}
