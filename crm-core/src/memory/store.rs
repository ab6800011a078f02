//! `MemoryStore`: every store port over one mutex-guarded state.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::ports::store::{check_consumer_name, check_event_limit};
use crate::{
    Account, AccountId, AccountStore, ApiKey, ApiKeyId, Claim, ClaimToken, Clock, Contact, ContactId, ContactQuery,
    ContactStore, Email, Error, Event, EventId, EventStore, Health, HealthCheck, ImportReport, Message, MessageId,
    MessageStore, Page, PageRequest, Phone, RejectedRow, Result, StatusUpdate, SystemClock, Template, TemplateId,
    TemplateStore, User, UserId,
};

#[derive(Debug, Clone)]
struct OutboxItem {
    due_at: DateTime<Utc>,
    lease: Option<(uuid::Uuid, DateTime<Utc>)>,
    attempt: u32,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    accounts: BTreeMap<AccountId, Account>,
    users: BTreeMap<UserId, User>,
    api_keys: BTreeMap<ApiKeyId, ApiKey>,
    contacts: BTreeMap<ContactId, Contact>,
    phones: HashMap<(AccountId, Phone), ContactId>,
    messages: BTreeMap<MessageId, Message>,
    provider_ids: HashMap<(AccountId, String), MessageId>,
    templates: BTreeMap<TemplateId, Template>,
    events: BTreeMap<EventId, Event>,
    consumers: BTreeSet<String>,
    outbox: BTreeMap<(String, EventId), OutboxItem>,
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
        for c in &self.consumers {
            self.outbox.insert(
                (c.clone(), event.id),
                OutboxItem { due_at: DateTime::<Utc>::MIN_UTC, lease: None, attempt: 0, last_error: None },
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

fn check_event_account(account: AccountId, event: &Event) -> Result<()> {
    if event.account_id != account {
        return Err(Error::validation("event", "belongs to another account"));
    }
    Ok(())
}

fn page_of<T: Clone>(items: impl Iterator<Item = T>, page: &PageRequest, id_of: impl Fn(&T) -> uuid::Uuid) -> Page<T> {
    let fetched: Vec<T> =
        items.filter(|i| page.after.is_none_or(|a| id_of(i) > a)).take(page.limit as usize + 1).collect();
    Page::from_overfetch(fetched, page.limit, id_of)
}

#[async_trait]
impl AccountStore for MemoryStore {
    async fn create_account(&self, account: &Account, event: &Event) -> Result<()> {
        check_event_account(account.id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if s.accounts.contains_key(&account.id) {
            return Err(Error::conflict("account", "id already exists"));
        }
        s.accounts.insert(account.id, account.clone());
        s.append(event);
        Ok(())
    }

    async fn get_account(&self, id: AccountId) -> Result<Account> {
        self.lock().accounts.get(&id).cloned().ok_or(Error::not_found("account"))
    }

    async fn create_user(&self, user: &User, event: &Event) -> Result<()> {
        check_event_account(user.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if !s.accounts.contains_key(&user.account_id) {
            return Err(Error::not_found("account"));
        }
        if s.users.values().any(|u| u.email == user.email) || s.users.contains_key(&user.id) {
            return Err(Error::conflict("user", "e-mail already registered"));
        }
        s.users.insert(user.id, user.clone());
        s.append(event);
        Ok(())
    }

    async fn get_user(&self, account: AccountId, id: UserId) -> Result<User> {
        self.lock().users.get(&id).filter(|u| u.account_id == account).cloned().ok_or(Error::not_found("user"))
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>> {
        Ok(self.lock().users.values().find(|u| &u.email == email).cloned())
    }

    async fn list_users(&self, account: AccountId) -> Result<Vec<User>> {
        Ok(self.lock().users.values().filter(|u| u.account_id == account).cloned().collect())
    }

    async fn create_api_key(&self, key: &ApiKey, event: &Event) -> Result<()> {
        check_event_account(key.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if !s.accounts.contains_key(&key.account_id) {
            return Err(Error::not_found("account"));
        }
        if s.api_keys.values().any(|k| k.prefix == key.prefix) || s.api_keys.contains_key(&key.id) {
            return Err(Error::conflict("api_key", "prefix already exists"));
        }
        s.api_keys.insert(key.id, key.clone());
        s.append(event);
        Ok(())
    }

    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>> {
        Ok(self.lock().api_keys.values().find(|k| k.prefix == prefix).cloned())
    }

    async fn list_api_keys(&self, account: AccountId) -> Result<Vec<ApiKey>> {
        Ok(self.lock().api_keys.values().filter(|k| k.account_id == account).cloned().collect())
    }

    async fn revoke_api_key(
        &self,
        account: AccountId,
        id: ApiKeyId,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<ApiKey> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let key = s.api_keys.get_mut(&id).filter(|k| k.account_id == account).ok_or(Error::not_found("api_key"))?;
        if key.revoked_at.is_some() {
            return Ok(key.clone());
        }
        key.revoked_at = Some(at);
        let key = key.clone();
        s.append(event);
        Ok(key)
    }
}

#[async_trait]
impl ContactStore for MemoryStore {
    async fn insert_contact(&self, contact: &Contact, event: &Event) -> Result<()> {
        check_event_account(contact.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let key = (contact.account_id, contact.phone.clone());
        if s.phones.contains_key(&key) {
            return Err(Error::conflict("contact", "a contact with this phone already exists"));
        }
        if s.contacts.contains_key(&contact.id) {
            return Err(Error::conflict("contact", "id already exists"));
        }
        let mut stored = contact.clone();
        stored.version = 0;
        s.phones.insert(key, contact.id);
        s.contacts.insert(contact.id, stored);
        s.append(event);
        Ok(())
    }

    async fn update_contact(&self, contact: &Contact, event: &Event) -> Result<Contact> {
        check_event_account(contact.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let current = s.contact(contact.account_id, contact.id)?.clone();
        if current.version != contact.version {
            return Err(Error::conflict("contact", "it was changed by someone else; reload and retry"));
        }
        if current.phone != contact.phone {
            let key = (contact.account_id, contact.phone.clone());
            if s.phones.contains_key(&key) {
                return Err(Error::conflict("contact", "a contact with this phone already exists"));
            }
            s.phones.remove(&(contact.account_id, current.phone.clone()));
            s.phones.insert(key, contact.id);
        }
        let mut stored = contact.clone();
        stored.version = current.version + 1;
        stored.created_at = current.created_at;
        stored.last_inbound_at = current.last_inbound_at;
        stored.last_outbound_at = current.last_outbound_at;
        s.contacts.insert(contact.id, stored.clone());
        s.append(event);
        Ok(stored)
    }

    async fn delete_contact(&self, account: AccountId, id: ContactId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let phone = s.contact(account, id)?.phone.clone();
        s.contacts.remove(&id);
        s.phones.remove(&(account, phone));
        let gone: Vec<MessageId> = s.messages.values().filter(|m| m.contact_id == id).map(|m| m.id).collect();
        for mid in gone {
            if let Some(m) = s.messages.remove(&mid)
                && let Some(p) = m.provider_message_id
            {
                s.provider_ids.remove(&(account, p));
            }
        }
        s.append(event);
        Ok(())
    }

    async fn get_contact(&self, account: AccountId, id: ContactId) -> Result<Contact> {
        self.lock().contact(account, id).cloned()
    }

    async fn find_contact_by_phone(&self, account: AccountId, phone: &Phone) -> Result<Option<Contact>> {
        let s = self.lock();
        Ok(s.phones.get(&(account, phone.clone())).and_then(|id| s.contacts.get(id)).cloned())
    }

    async fn list_contacts(&self, account: AccountId, query: &ContactQuery) -> Result<Page<Contact>> {
        let s = self.lock();
        let items = s.contacts.values().filter(|c| c.account_id == account && query.matches(c)).cloned();
        Ok(page_of(items, &query.page, |c| c.id.into_uuid()))
    }

    async fn import_contacts(
        &self,
        account: AccountId,
        contacts: &[Contact],
        events: &[Event],
    ) -> Result<ImportReport> {
        if contacts.len() != events.len() {
            return Err(Error::validation("events", "must have one event per contact"));
        }
        for (c, e) in contacts.iter().zip(events) {
            if c.account_id != account {
                return Err(Error::validation("contacts", "a contact belongs to another account"));
            }
            check_event_account(account, e)?;
        }
        let mut s = self.lock();
        for e in events {
            s.ensure_new(e)?;
        }
        let mut report = ImportReport::default();
        let mut seen: HashMap<&Phone, usize> = HashMap::new();
        for (index, (c, e)) in contacts.iter().zip(events).enumerate() {
            if let Some(first) = seen.get(&c.phone) {
                report.rejected.push(RejectedRow { index, reason: format!("phone repeats row {first}") });
                continue;
            }
            seen.insert(&c.phone, index);
            let key = (account, c.phone.clone());
            if s.phones.contains_key(&key) || s.contacts.contains_key(&c.id) {
                report.rejected.push(RejectedRow { index, reason: "a contact with this phone already exists".into() });
                continue;
            }
            let mut stored = c.clone();
            stored.version = 0;
            s.phones.insert(key, c.id);
            s.contacts.insert(c.id, stored);
            s.append(e);
            report.imported += 1;
        }
        Ok(report)
    }
}

#[async_trait]
impl MessageStore for MemoryStore {
    async fn insert_message(&self, message: &Message, event: &Event) -> Result<()> {
        check_event_account(message.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        s.contact(message.account_id, message.contact_id)?;
        if let Some(p) = &message.provider_message_id
            && s.provider_ids.contains_key(&(message.account_id, p.clone()))
        {
            return Err(Error::conflict("message", "provider message id already recorded"));
        }
        if s.messages.contains_key(&message.id) {
            return Err(Error::conflict("message", "id already exists"));
        }
        if let Some(p) = &message.provider_message_id {
            s.provider_ids.insert((message.account_id, p.clone()), message.id);
        }
        s.messages.insert(message.id, message.clone());
        if let Some(c) = s.contacts.get_mut(&message.contact_id) {
            let slot = match message.direction {
                crate::Direction::Inbound => &mut c.last_inbound_at,
                crate::Direction::Outbound => &mut c.last_outbound_at,
            };
            if slot.is_none_or(|t| t < message.created_at) {
                *slot = Some(message.created_at);
            }
        }
        s.append(event);
        Ok(())
    }

    async fn get_message(&self, account: AccountId, id: MessageId) -> Result<Message> {
        self.lock().messages.get(&id).filter(|m| m.account_id == account).cloned().ok_or(Error::not_found("message"))
    }

    async fn find_message_by_provider_id(
        &self,
        account: AccountId,
        provider_message_id: &str,
    ) -> Result<Option<Message>> {
        let s = self.lock();
        Ok(s.provider_ids.get(&(account, provider_message_id.to_owned())).and_then(|id| s.messages.get(id)).cloned())
    }

    async fn update_message_status(
        &self,
        account: AccountId,
        id: MessageId,
        update: &StatusUpdate,
        event: &Event,
    ) -> Result<Option<Message>> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let current = s.message_mut(account, id)?.clone();
        if !current.status.can_become(update.status) {
            return Ok(None);
        }
        let mut next = current.clone();
        next.apply_status(update);
        if current.provider_message_id.is_none()
            && let Some(p) = &next.provider_message_id
        {
            match s.provider_ids.get(&(account, p.clone())) {
                Some(other) if *other != id => {
                    return Err(Error::conflict("message", "provider message id already recorded"));
                }
                _ => {
                    s.provider_ids.insert((account, p.clone()), id);
                }
            }
        }
        *s.message_mut(account, id)? = next.clone();
        s.append(event);
        Ok(Some(next))
    }

    async fn list_thread(&self, account: AccountId, contact: ContactId, page: &PageRequest) -> Result<Page<Message>> {
        let s = self.lock();
        s.contact(account, contact)?;
        let items = s.messages.values().filter(|m| m.account_id == account && m.contact_id == contact).cloned();
        Ok(page_of(items, page, |m| m.id.into_uuid()))
    }
}

#[async_trait]
impl TemplateStore for MemoryStore {
    async fn insert_template(&self, template: &Template, event: &Event) -> Result<()> {
        check_event_account(template.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let clash = s
            .templates
            .values()
            .any(|t| t.account_id == template.account_id && t.name == template.name && t.language == template.language);
        if clash || s.templates.contains_key(&template.id) {
            return Err(Error::conflict("template", "a template with this name and language exists"));
        }
        s.templates.insert(template.id, template.clone());
        s.append(event);
        Ok(())
    }

    async fn update_template(&self, template: &Template, event: &Event) -> Result<()> {
        check_event_account(template.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let existing = s
            .templates
            .get(&template.id)
            .filter(|t| t.account_id == template.account_id)
            .ok_or(Error::not_found("template"))?;
        let created_at = existing.created_at;
        let clash = s.templates.values().any(|t| {
            t.id != template.id
                && t.account_id == template.account_id
                && t.name == template.name
                && t.language == template.language
        });
        if clash {
            return Err(Error::conflict("template", "a template with this name and language exists"));
        }
        let mut stored = template.clone();
        stored.created_at = created_at;
        s.templates.insert(template.id, stored);
        s.append(event);
        Ok(())
    }

    async fn delete_template(&self, account: AccountId, id: TemplateId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if s.templates.get(&id).is_none_or(|t| t.account_id != account) {
            return Err(Error::not_found("template"));
        }
        s.templates.remove(&id);
        s.append(event);
        Ok(())
    }

    async fn get_template(&self, account: AccountId, id: TemplateId) -> Result<Template> {
        self.lock().templates.get(&id).filter(|t| t.account_id == account).cloned().ok_or(Error::not_found("template"))
    }

    async fn find_template(&self, account: AccountId, name: &str, language: &str) -> Result<Option<Template>> {
        Ok(self
            .lock()
            .templates
            .values()
            .find(|t| t.account_id == account && t.name == name && t.language == language)
            .cloned())
    }

    async fn list_templates(&self, account: AccountId, page: &PageRequest) -> Result<Page<Template>> {
        let s = self.lock();
        let items = s.templates.values().filter(|t| t.account_id == account).cloned();
        Ok(page_of(items, page, |t| t.id.into_uuid()))
    }
}

fn lease_deadline(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn list_events(&self, account: AccountId, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        check_event_limit(limit)?;
        let s = self.lock();
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(s.events
            .range((start, std::ops::Bound::Unbounded))
            .map(|(_, e)| e)
            .filter(|e| e.account_id == account)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn read_all_events(&self, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        check_event_limit(limit)?;
        let s = self.lock();
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(s.events.range((start, std::ops::Bound::Unbounded)).take(limit as usize).map(|(_, e)| e.clone()).collect())
    }

    async fn register_consumer(&self, consumer: &str) -> Result<()> {
        check_consumer_name(consumer)?;
        self.lock().consumers.insert(consumer.to_owned());
        Ok(())
    }

    async fn claim(&self, consumer: &str, limit: u32, lease: Duration) -> Result<Vec<Claim>> {
        check_consumer_name(consumer)?;
        check_event_limit(limit)?;
        let now = self.clock.now();
        let until = lease_deadline(now, lease);
        let mut s = self.lock();
        let State { outbox, events, .. } = &mut *s;
        let mut claims = Vec::new();
        let range = outbox.range_mut((consumer.to_owned(), EventId::from_uuid(uuid::Uuid::nil()))..);
        for ((c, event_id), item) in range {
            if c != consumer || claims.len() >= limit as usize {
                break;
            }
            let leased = item.lease.is_some_and(|(_, exp)| exp > now);
            if leased || item.due_at > now {
                continue;
            }
            let Some(event) = events.get(event_id) else { continue };
            let lease_id = uuid::Uuid::now_v7();
            item.lease = Some((lease_id, until));
            item.attempt += 1;
            claims.push(Claim {
                token: ClaimToken { consumer: consumer.to_owned(), event_id: *event_id, lease_id },
                event: event.clone(),
                attempt: item.attempt,
                last_error: item.last_error.clone(),
            });
        }
        Ok(claims)
    }

    async fn ack(&self, claim: &ClaimToken) -> Result<()> {
        let mut s = self.lock();
        let key = (claim.consumer.clone(), claim.event_id);
        let item = s.outbox.get(&key).ok_or(Error::not_found("outbox item"))?;
        if item.lease.map(|(id, _)| id) != Some(claim.lease_id) {
            return Err(Error::conflict("outbox item", "the lease was lost to another claim"));
        }
        s.outbox.remove(&key);
        Ok(())
    }

    async fn nack(&self, claim: &ClaimToken, retry_in: Duration, error: &str) -> Result<()> {
        let now = self.clock.now();
        let mut s = self.lock();
        let key = (claim.consumer.clone(), claim.event_id);
        let item = s.outbox.get_mut(&key).ok_or(Error::not_found("outbox item"))?;
        if item.lease.map(|(id, _)| id) != Some(claim.lease_id) {
            return Err(Error::conflict("outbox item", "the lease was lost to another claim"));
        }
        item.lease = None;
        item.due_at = lease_deadline(now, retry_in);
        item.last_error = Some(error.chars().take(1000).collect());
        Ok(())
    }

    async fn pending(&self, consumer: &str) -> Result<u64> {
        check_consumer_name(consumer)?;
        Ok(self.lock().outbox.keys().filter(|(c, _)| c == consumer).count() as u64)
    }
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
