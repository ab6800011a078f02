//! [`GroupStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

use super::MemoryStore;
use crate::domain::group::{Group, GroupMessage};
use crate::ports::groups::{GroupStore, check_group, check_group_message_limit};
use crate::ports::store::check_event_account;
use crate::{AccountId, ChannelId, Error, Event, GroupId, MessageId, MessageStatus, Phone, Result};

/// The groups and their messages.
#[derive(Debug, Default)]
pub(super) struct GroupState {
    groups: BTreeMap<GroupId, Group>,
    by_jid: HashMap<(AccountId, ChannelId, String), GroupId>,
    messages: BTreeMap<MessageId, GroupMessage>,
    by_provider_id: HashMap<(AccountId, String), MessageId>,
}

#[async_trait]
impl GroupStore for MemoryStore {
    async fn put_group(&self, group: &Group, event: &Event) -> Result<Group> {
        check_group(group, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let key = (group.account_id, group.channel_id, group.jid.clone());
        let mut stored = group.clone();
        match s.groups.by_jid.get(&key).and_then(|id| s.groups.groups.get(id)) {
            Some(old) => {
                stored.id = old.id;
                stored.created_at = old.created_at;
            }
            None if s.groups.groups.contains_key(&group.id) => {
                return Err(Error::conflict("group", "id already exists"));
            }
            None => {}
        }
        s.groups.by_jid.insert(key, stored.id);
        s.groups.groups.insert(stored.id, stored.clone());
        s.append(event);
        Ok(stored)
    }

    async fn get_group(&self, account: AccountId, id: GroupId) -> Result<Group> {
        let s = self.lock();
        s.groups.groups.get(&id).filter(|g| g.account_id == account).cloned().ok_or(Error::not_found("group"))
    }

    async fn find_group(&self, account: AccountId, channel: ChannelId, jid: &str) -> Result<Option<Group>> {
        let s = self.lock();
        let id = s.groups.by_jid.get(&(account, channel, jid.to_owned()));
        Ok(id.and_then(|id| s.groups.groups.get(id)).cloned())
    }

    async fn list_groups(&self, account: AccountId, channel: ChannelId) -> Result<Vec<Group>> {
        let s = self.lock();
        let mut out: Vec<Group> =
            s.groups.groups.values().filter(|g| g.account_id == account && g.channel_id == channel).cloned().collect();
        out.sort_by(|a, b| a.subject.cmp(&b.subject).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn insert_group_message(&self, message: &GroupMessage, event: &Event) -> Result<bool> {
        check_event_account(message.account_id, event)?;
        message.check()?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if s.groups.groups.get(&message.group_id).is_none_or(|g| g.account_id != message.account_id) {
            return Err(Error::not_found("group"));
        }
        if s.groups.messages.contains_key(&message.id) {
            return Err(Error::conflict("group message", "id already exists"));
        }
        if let Some(pid) = &message.provider_message_id {
            let key = (message.account_id, pid.clone());
            if s.groups.by_provider_id.contains_key(&key) {
                return Ok(false);
            }
            s.groups.by_provider_id.insert(key, message.id);
        }
        s.groups.messages.insert(message.id, message.clone());
        s.append(event);
        Ok(true)
    }

    async fn list_group_messages(
        &self,
        account: AccountId,
        group: GroupId,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<GroupMessage>> {
        check_group_message_limit(limit)?;
        let s = self.lock();
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(s.groups
            .messages
            .range((start, std::ops::Bound::Unbounded))
            .map(|(_, m)| m)
            .filter(|m| m.account_id == account && m.group_id == group)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn find_group_message(&self, account: AccountId, provider_message_id: &str) -> Result<Option<GroupMessage>> {
        let s = self.lock();
        let id = s.groups.by_provider_id.get(&(account, provider_message_id.to_owned()));
        Ok(id.and_then(|id| s.groups.messages.get(id)).cloned())
    }

    async fn apply_group_receipt(
        &self,
        account: AccountId,
        provider_message_id: &str,
        participant: Option<&Phone>,
        status: MessageStatus,
        at: DateTime<Utc>,
    ) -> Result<GroupMessage> {
        let mut s = self.lock();
        let id = *s
            .groups
            .by_provider_id
            .get(&(account, provider_message_id.to_owned()))
            .ok_or(Error::not_found("group message"))?;
        let m = s.groups.messages.get_mut(&id).ok_or(Error::not_found("group message"))?;
        m.apply_receipt(participant, status, at);
        Ok(m.clone())
    }
}
