//! Conformance suites for the store ports ([`Store`] and its parts).
//!
//! Every function takes a fresh, empty store and checks one behaviour of the
//! contracts written on [`AccountStore`], [`ContactStore`], [`MessageStore`],
//! [`TemplateStore`], [`EventStore`], [`JobStore`], [`ChannelStore`] and
//! [`CampaignStore`]. The
//! behaviours are grouped in one section per aggregate ([`accounts`],
//! [`contacts`], [`messages`], [`templates`], [`events`], [`jobs`],
//! [`channels`], [`campaigns`], [`webhooks`]), each with its own
//! `run_all`; [`run_all`] here runs every section and the health probe, each
//! behaviour on a new store from the factory. A new aggregate brings its own section and one line in
//! [`run_all`].
//!
//! Times are taken from [`SystemClock`] (microsecond precision) so that a
//! value read back must equal the value written.

use chrono::{DateTime, Utc};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;

use crate::{
    Account, AccountId, Clock, Contact, ContactQuery, Error, Event, EventType, HealthStatus, Message, MessageContent,
    MessageStatus, NewContact, PageRequest, StatusUpdate, Store, SystemClock,
};
#[allow(unused_imports)] // referenced by the module docs
use crate::{
    AccountStore, CampaignStore, ChannelStore, ContactStore, EventStore, JobStore, MessageStore, TemplateStore,
};

pub mod accounts;
pub mod assistant;
pub mod automations;
pub mod billing;
pub mod campaigns;
pub mod channel_sessions;
pub mod channels;
pub mod connections;
pub mod contacts;
pub mod events;
pub mod groups;
pub mod idempotency;
pub mod inbox;
pub mod jobs;
pub mod media;
pub mod messages;
pub mod oauth;
pub mod sequences;
pub mod sessions;
pub mod templates;
pub mod webhooks;
pub mod whatsapp_ids;

// Every behaviour also at its path from before the sections
// (`testing::store::api_keys`), so suites written against it keep compiling.
#[doc(no_inline)]
pub use accounts::{account_time_zones, accounts_and_users, api_keys};
#[doc(no_inline)]
pub use contacts::{
    concurrent_contact_inserts_same_phone, contact_crud, contact_phone_is_unique_per_account,
    contact_roundtrip_preserves_every_field, contact_tenancy, contact_update_is_optimistic,
    import_contacts_reports_rows, import_contacts_validates_arguments, list_contacts_filters,
    list_contacts_keyset_pagination, list_contacts_search_is_literal,
};
#[doc(no_inline)]
pub use events::{
    event_per_mutation, events_cursor_and_limits, failed_mutations_write_no_event, outbox_claim_and_ack,
    outbox_concurrent_claims_never_overlap, outbox_consumers_are_independent, outbox_lease_expiry,
    outbox_nack_retries_later,
};
#[doc(no_inline)]
pub use messages::{
    contact_delete_cascades, message_status_concurrent_updates, message_status_only_moves_forward, message_tenancy,
    message_thread_pagination, messages_insert_and_find, messages_move_contact_activity_forward,
};
#[doc(no_inline)]
pub use templates::templates_crud_and_uniqueness;

/// Runs every store behaviour — each section, then the health probe — each
/// on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    accounts::run_all(&make).await;
    sessions::run_all(&make).await;
    contacts::run_all(&make).await;
    messages::run_all(&make).await;
    templates::run_all(&make).await;
    events::run_all(&make).await;
    jobs::run_all(&make).await;
    channels::run_all(&make).await;
    campaigns::run_all(&make).await;
    webhooks::run_all(&make).await;
    channel_sessions::run_all(&make).await;
    assistant::run_all(&make).await;
    billing::run_all(&make).await;
    media::run_all(&make).await;
    automations::run_all(&make).await;
    sequences::run_all(&make).await;
    oauth::run_all(&make).await;
    connections::run_all(&make).await;
    groups::run_all(&make).await;
    whatsapp_ids::run_all(&make).await;
    inbox::run_all(&make).await;
    idempotency::run_all(&make).await;
    health_reports_healthy(make().await).await;
}

// ----- fixtures ----------------------------------------------------------------

fn now() -> DateTime<Utc> {
    SystemClock.now()
}

fn ev(account: AccountId, kind: EventType) -> Event {
    Event::new(account, kind, &json!({ "probe": true }), now())
}

async fn new_account(store: &Arc<dyn Store>, name: &str) -> AccountId {
    let a = Account::new(name, now()).expect("valid account");
    store.create_account(&a, &ev(a.id, EventType::ACCOUNT_CREATED)).await.expect("[fixture] create_account");
    a.id
}

fn contact(account: AccountId, name: &str, phone: &str) -> Contact {
    Contact::new(account, NewContact { name: name.into(), phone: phone.into(), ..Default::default() }, now())
        .expect("valid contact")
}

fn phone(n: usize) -> String {
    format!("+55119{:08}", 10_000_000 + n)
}

async fn insert(store: &Arc<dyn Store>, c: &Contact) {
    store
        .insert_contact(c, &ev(c.account_id, EventType::CONTACT_CREATED))
        .await
        .unwrap_or_else(|e| panic!("[fixture] insert_contact: {e}"));
}

fn outbound(c: &Contact, text: &str) -> Message {
    Message::outbound(c.account_id, c.id, MessageContent::text(text), now()).expect("valid message")
}

fn inbound(c: &Contact, pid: &str, at: DateTime<Utc>) -> Message {
    Message::inbound(c.account_id, c.id, MessageContent::text("oi"), Some(pid.into()), at, now()).expect("valid")
}

fn status(status: MessageStatus, pid: Option<&str>) -> StatusUpdate {
    StatusUpdate { status, at: now(), provider_message_id: pid.map(Into::into), error: None, pricing: None }
}

async fn events_of(store: &Arc<dyn Store>, account: AccountId) -> Vec<Event> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_events(account, after, 1000).await.expect("list_events");
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        all.extend(page);
    }
    all
}

async fn event_count(store: &Arc<dyn Store>, account: AccountId) -> usize {
    events_of(store, account).await.len()
}

fn is_not_found(r: &Error) -> bool {
    matches!(r, Error::NotFound { .. })
}

fn is_conflict(r: &Error) -> bool {
    matches!(r, Error::Conflict { .. })
}

fn query(page: PageRequest) -> ContactQuery {
    ContactQuery { page, ..Default::default() }
}

async fn all_contacts(store: &Arc<dyn Store>, account: AccountId, mut q: ContactQuery) -> Vec<Contact> {
    let mut out = Vec::new();
    q.page = PageRequest::first(200).expect("limit");
    loop {
        let page = store.list_contacts(account, &q).await.expect("list_contacts");
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => q.page = PageRequest::new(Some(&c), 200).expect("cursor"),
            None => break,
        }
    }
    out
}

// ----- the store as a whole ------------------------------------------------------------

/// The store's health probe answers healthy when it works.
pub async fn health_reports_healthy(store: Arc<dyn Store>) {
    let h = store.check().await;
    assert_eq!(h.status, HealthStatus::Healthy, "[health] {h:?}");
    assert_eq!(store.name(), "database", "[health] probe name");
}
