//! [`ChannelStore`] for [`MemoryStore`].

use async_trait::async_trait;

use super::{MemoryStore, State, deadline};
use crate::ports::channels::check_lease_owner;
use crate::ports::store::{check_event_account, check_event_limit};
use crate::{AccountId, Channel, ChannelId, ChannelKind, ChannelStore, Error, Event, Result, Throttle};

impl State {
    pub(super) fn channel(&self, account: AccountId, id: ChannelId) -> Result<&Channel> {
        self.channels.get(&id).filter(|c| c.account_id == account).ok_or(Error::not_found("channel"))
    }

    /// `(kind, provider_id)` is unique across accounts.
    fn check_provider_id(&self, channel: &Channel) -> Result<()> {
        if let Some(p) = &channel.provider_id
            && self
                .channels
                .values()
                .any(|c| c.id != channel.id && c.kind == channel.kind && c.provider_id.as_ref() == Some(p))
        {
            return Err(Error::conflict("channel", "another channel of this kind has this provider id"));
        }
        Ok(())
    }

    /// At most one default per account: a channel losing the flag is changed,
    /// so its version moves (a stale copy of it cannot take the flag back).
    fn make_default(&mut self, channel: &Channel) {
        if channel.is_default {
            for c in self.channels.values_mut() {
                if c.account_id == channel.account_id && c.id != channel.id && c.is_default {
                    c.is_default = false;
                    c.version += 1;
                    c.updated_at = c.updated_at.max(channel.updated_at);
                }
            }
        }
    }
}

#[async_trait]
impl ChannelStore for MemoryStore {
    async fn insert_channel(&self, channel: &Channel, event: &Event) -> Result<()> {
        check_event_account(channel.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if s.channels.contains_key(&channel.id) {
            return Err(Error::conflict("channel", "id already exists"));
        }
        s.check_provider_id(channel)?;
        s.make_default(channel);
        let mut stored = channel.clone();
        stored.version = 0;
        s.channels.insert(channel.id, stored);
        s.append(event);
        Ok(())
    }

    async fn update_channel(&self, channel: &Channel, event: &Event) -> Result<Channel> {
        check_event_account(channel.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let current = s.channel(channel.account_id, channel.id)?;
        if current.version != channel.version {
            return Err(Error::conflict("channel", "it was changed by someone else; reload and retry"));
        }
        let (throttle, created_at) = (current.throttle.clone(), current.created_at);
        s.check_provider_id(channel)?;
        s.make_default(channel);
        let mut stored = channel.clone();
        stored.version += 1;
        stored.throttle = throttle;
        stored.created_at = created_at;
        s.channels.insert(channel.id, stored.clone());
        s.append(event);
        Ok(stored)
    }

    async fn delete_channel(&self, account: AccountId, id: ChannelId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        s.channel(account, id)?;
        s.channels.remove(&id);
        s.channel_leases.remove(&id);
        s.whatsapp_ids.retain(|(channel, _), _| *channel != id);
        s.append(event);
        Ok(())
    }

    async fn get_channel(&self, account: AccountId, id: ChannelId) -> Result<Channel> {
        self.lock().channel(account, id).cloned()
    }

    async fn list_channels(&self, account: AccountId) -> Result<Vec<Channel>> {
        Ok(self.lock().channels.values().filter(|c| c.account_id == account).cloned().collect())
    }

    async fn default_channel(&self, account: AccountId) -> Result<Option<Channel>> {
        Ok(self.lock().channels.values().find(|c| c.account_id == account && c.is_default).cloned())
    }

    async fn find_channel_by_provider_id(&self, kind: &ChannelKind, provider_id: &str) -> Result<Option<Channel>> {
        Ok(self
            .lock()
            .channels
            .values()
            .find(|c| &c.kind == kind && c.provider_id.as_deref() == Some(provider_id))
            .cloned())
    }

    async fn list_all_channels(&self, after: Option<ChannelId>, limit: u32) -> Result<Vec<Channel>> {
        check_event_limit(limit)?;
        Ok(self
            .lock()
            .channels
            .values()
            .filter(|c| after.is_none_or(|a| c.id > a))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn set_channel_throttle(
        &self,
        account: AccountId,
        id: ChannelId,
        throttle: Option<&Throttle>,
        event: &Event,
    ) -> Result<()> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        s.channel(account, id)?;
        if let Some(c) = s.channels.get_mut(&id) {
            c.throttle = throttle.cloned();
        }
        s.append(event);
        Ok(())
    }

    async fn record_channel_event(&self, account: AccountId, id: ChannelId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        s.channel(account, id)?;
        s.append(event);
        Ok(())
    }

    async fn acquire_channel_lease(&self, id: ChannelId, owner: &str, ttl: std::time::Duration) -> Result<bool> {
        check_lease_owner(owner)?;
        let now = self.clock.now();
        let mut s = self.lock();
        if !s.channels.contains_key(&id) {
            return Err(Error::not_found("channel"));
        }
        if let Some((holder, until)) = s.channel_leases.get(&id)
            && holder != owner
            && *until > now
        {
            return Ok(false);
        }
        s.channel_leases.insert(id, (owner.to_owned(), deadline(now, ttl)));
        Ok(true)
    }

    async fn release_channel_lease(&self, id: ChannelId, owner: &str) -> Result<bool> {
        let mut s = self.lock();
        if s.channel_leases.get(&id).is_some_and(|(holder, _)| holder == owner) {
            s.channel_leases.remove(&id);
            return Ok(true);
        }
        Ok(false)
    }

    async fn channel_lease_owner(&self, id: ChannelId) -> Result<Option<String>> {
        let now = self.clock.now();
        let s = self.lock();
        Ok(s.channel_leases.get(&id).filter(|(_, until)| *until > now).map(|(holder, _)| holder.clone()))
    }
}
