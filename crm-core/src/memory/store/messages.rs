//! [`MessageStore`] for [`MemoryStore`].

use async_trait::async_trait;

use super::{MemoryStore, page_of};
use crate::ports::store::check_event_account;
use crate::{
    AccountId, ChannelId, ContactId, Direction, Error, Event, Message, MessageAnnotation, MessageId, MessageStore,
    Page, PageRequest, Result, StatusUpdate,
};
use chrono::{DateTime, Utc};

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
        if let Some(r) = &message.client_reference
            && s.client_refs.contains_key(&(message.account_id, r.clone()))
        {
            return Err(Error::conflict("message", "client reference already used"));
        }
        if s.messages.contains_key(&message.id) {
            return Err(Error::conflict("message", "id already exists"));
        }
        if let Some(p) = &message.provider_message_id {
            s.provider_ids.insert((message.account_id, p.clone()), message.id);
        }
        if let Some(r) = &message.client_reference {
            s.client_refs.insert((message.account_id, r.clone()), message.id);
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

    async fn find_message_by_client_reference(&self, account: AccountId, reference: &str) -> Result<Option<Message>> {
        let s = self.lock();
        Ok(s.client_refs.get(&(account, reference.to_owned())).and_then(|id| s.messages.get(id)).cloned())
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

    async fn last_inbound_by_channel(
        &self,
        account: AccountId,
        contact: ContactId,
    ) -> Result<Vec<(Option<ChannelId>, DateTime<Utc>)>> {
        let s = self.lock();
        let mut latest: std::collections::HashMap<Option<ChannelId>, DateTime<Utc>> = Default::default();
        for m in s.messages.values() {
            if m.account_id == account && m.contact_id == contact && m.direction == Direction::Inbound {
                let slot = latest.entry(m.channel_id).or_insert(m.created_at);
                if *slot < m.created_at {
                    *slot = m.created_at;
                }
            }
        }
        Ok(latest.into_iter().collect())
    }

    async fn annotate_message(
        &self,
        account: AccountId,
        id: MessageId,
        annotation: &MessageAnnotation,
        event: &Event,
    ) -> Result<Message> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let m = s.message_mut(account, id)?;
        if annotation.fallback.is_some() && m.status != crate::MessageStatus::Queued {
            return Err(Error::conflict("message", "it is no longer queued"));
        }
        if let Some(f) = &annotation.fallback {
            m.content = f.content.clone();
            m.fallback = Some(f.fallback.clone());
        }
        if let Some(a) = &annotation.attachment {
            m.attachment = Some(a.clone());
        }
        if let Some(p) = &annotation.pricing {
            m.pricing = Some(p.clone());
        }
        let next = m.clone();
        s.append(event);
        Ok(next)
    }
}
