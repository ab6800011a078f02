//! [`ContactStore`] for [`MemoryStore`].

use async_trait::async_trait;
use std::collections::HashMap;

use super::{MemoryStore, page_of};
use crate::ports::store::{check_event_account, check_import};
use crate::{
    AccountId, Contact, ContactId, ContactQuery, ContactStore, Error, Event, ImportReport, MessageId, Page, Phone,
    RejectedRow, Result,
};

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
        s.ai_drafts.retain(|_, d| d.contact_id != id);
        s.ai_analyses.retain(|_, d| d.contact_id != id);
        s.oauth.forget_contact(id);
        s.threads.remove(&id);
        let gone: Vec<MessageId> = s.messages.values().filter(|m| m.contact_id == id).map(|m| m.id).collect();
        for mid in gone {
            if let Some(m) = s.messages.remove(&mid) {
                if let Some(p) = m.provider_message_id {
                    s.provider_ids.remove(&(account, p));
                }
                if let Some(r) = m.client_reference {
                    s.client_refs.remove(&(account, r));
                }
            }
        }
        for e in s.events.values_mut().filter(|e| e.account_id == account) {
            if let Some(kept) = crate::ports::store::erased_payload(e.event_type.as_str(), &e.payload, id) {
                e.payload = kept;
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
        check_import(account, contacts, events)?;
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
