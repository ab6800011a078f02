//! Groups: a channel's WhatsApp groups through its provider's
//! [`GroupManager`], kept in the [`GroupStore`](crate::GroupStore) with
//! their threads and events.
//!
//! Unlike one-to-one sends (queued, then sent by the dispatcher), group
//! administration answers with the provider's result: the caller needs
//! the new group's id or the provider's refusal, so each call goes to the
//! provider first and stores what it answered.

use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Arc;

use super::Crm;
use crate::domain::group::{
    Group, GroupInfo, GroupMessage, GroupPatch, check_description, check_group_jid, check_participants, check_subject,
};
use crate::{
    AccountId, Channel, ChannelId, Error, EventType, GroupId, GroupManager, MessageContent, MessageId, MessageStatus,
    Messenger, Phone, Result,
};

/// A group's participants change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantChange {
    /// Add members.
    Add,
    /// Remove members.
    Remove,
    /// Make members admins.
    Promote,
    /// Take members' admin rights.
    Demote,
}

impl ParticipantChange {
    /// Stable name, used in `group.participants_changed` events.
    pub fn as_str(self) -> &'static str {
        match self {
            ParticipantChange::Add => "added",
            ParticipantChange::Remove => "removed",
            ParticipantChange::Promote => "promoted",
            ParticipantChange::Demote => "demoted",
        }
    }
}

/// A group message a provider reported (inbound, from a participant).
#[derive(Debug, Clone, PartialEq)]
pub struct InboundGroupMessage {
    /// The group's WhatsApp id (`…@g.us`).
    pub group: String,
    /// The participant who wrote it.
    pub sender: Phone,
    /// Their profile name, if reported.
    pub sender_name: Option<String>,
    /// The provider's message id.
    pub provider_message_id: String,
    /// What it says.
    pub content: MessageContent,
    /// When it was sent, if reported.
    pub sent_at: Option<DateTime<Utc>>,
}

fn group_payload(group: &Group) -> serde_json::Value {
    json!({
        "group_id": group.id,
        "channel_id": group.channel_id,
        "jid": group.jid,
        "subject": group.subject,
        "description": group.description,
        "participants": group.participants,
        "left": group.left_at.is_some(),
    })
}

fn message_payload(message: &GroupMessage) -> serde_json::Value {
    json!({
        "message_id": message.id,
        "group_id": message.group_id,
        "channel_id": message.channel_id,
        "direction": message.direction,
        "sender": message.sender,
        "sender_name": message.sender_name,
        "provider_message_id": message.provider_message_id,
        "content": message.content,
    })
}

impl Crm {
    /// Reads participants' phones as people type them (E.164, or national
    /// numbers under the service's default country), refusing the first
    /// bad one with [`Error::Validation`] on `participants[i]`, and checks
    /// the list ([`check_participants`]).
    pub fn parse_participants(&self, inputs: &[String]) -> Result<Vec<Phone>> {
        if inputs.len() > crate::domain::group::MAX_PARTICIPANTS {
            let max = crate::domain::group::MAX_PARTICIPANTS;
            return Err(Error::validation("participants", format!("at most {max} participants")));
        }
        let phones = inputs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                self.parse_phone(p).map_err(|e| match e {
                    Error::Validation { reason, .. } => Error::validation(format!("participants[{i}]"), reason),
                    other => other,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        check_participants(&phones)?;
        Ok(phones)
    }

    /// The group manager of `channel`: [`Error::Unsupported`] when its
    /// provider has none.
    pub async fn group_manager(&self, channel: &Channel) -> Result<Arc<dyn GroupManager>> {
        let messenger = self.channels.messenger(channel).await?;
        let provider = messenger.provider().to_owned();
        messenger.group_manager().ok_or_else(|| Error::unsupported(provider, "groups"))
    }

    async fn group_of(&self, account: AccountId, channel: ChannelId, id: GroupId) -> Result<(Channel, Group)> {
        let channel = self.store.get_channel(account, channel).await?;
        let group = self.store.get_group(account, id).await?;
        if group.channel_id != channel.id {
            return Err(Error::not_found("group"));
        }
        Ok((channel, group))
    }

    /// Stores what the provider reports of a group (creating or updating
    /// its record with `group.created` / `group.updated`); an unchanged
    /// group writes nothing.
    async fn store_group_info(&self, channel: &Channel, info: &GroupInfo) -> Result<Group> {
        let now = self.now();
        match self.store.find_group(channel.account_id, channel.id, &info.jid).await? {
            None => {
                let group = Group::new(channel.account_id, channel.id, info, now)?;
                let event = self.event(channel.account_id, EventType::GROUP_CREATED, &group_payload(&group));
                self.store.put_group(&group, &event).await
            }
            Some(mut group) => {
                if !group.apply_info(info, now)? {
                    return Ok(group);
                }
                let event = self.event(channel.account_id, EventType::GROUP_UPDATED, &group_payload(&group));
                self.store.put_group(&group, &event).await
            }
        }
    }

    /// Creates a group on a channel with `subject` and `participants`
    /// (checked first: [`Error::Validation`]), stores it and records
    /// `group.created`. [`Error::NotFound`] for an unknown channel,
    /// [`Error::Unsupported`] when its provider manages no groups.
    pub async fn create_group(
        &self,
        account: AccountId,
        channel: ChannelId,
        subject: &str,
        participants: &[Phone],
    ) -> Result<Group> {
        check_subject(subject)?;
        check_participants(participants)?;
        let channel = self.store.get_channel(account, channel).await?;
        let info = self.group_manager(&channel).await?.create_group(subject, participants).await?;
        self.store_group_info(&channel, &info).await
    }

    /// A channel's groups as stored; with `refresh`, first asks the
    /// provider for the groups its number is in and stores what changed
    /// (groups it no longer reports are marked left).
    pub async fn list_groups(&self, account: AccountId, channel: ChannelId, refresh: bool) -> Result<Vec<Group>> {
        let channel = self.store.get_channel(account, channel).await?;
        if refresh {
            let infos = self.group_manager(&channel).await?.list_groups().await?;
            for info in &infos {
                self.store_group_info(&channel, info).await?;
            }
            for mut group in self.store.list_groups(account, channel.id).await? {
                if group.left_at.is_none() && !infos.iter().any(|i| i.jid == group.jid) {
                    group.left_at = Some(self.now());
                    group.updated_at = self.now();
                    let event = self.event(account, EventType::GROUP_UPDATED, &group_payload(&group));
                    self.store.put_group(&group, &event).await?;
                }
            }
        }
        self.store.list_groups(account, channel.id).await
    }

    /// One stored group of a channel. [`Error::NotFound`] for an unknown
    /// channel or group (or one of another channel).
    pub async fn get_group(&self, account: AccountId, channel: ChannelId, id: GroupId) -> Result<Group> {
        Ok(self.group_of(account, channel, id).await?.1)
    }

    /// Changes a group's subject and/or description through the provider
    /// and records `group.updated`. Both are checked before anything is
    /// sent; an empty patch is [`Error::Validation`].
    pub async fn update_group(
        &self,
        account: AccountId,
        channel: ChannelId,
        id: GroupId,
        patch: &GroupPatch,
    ) -> Result<Group> {
        if patch.subject.is_none() && patch.description.is_none() {
            return Err(Error::validation("subject", "give a subject, a description or both"));
        }
        if let Some(s) = &patch.subject {
            check_subject(s)?;
        }
        if let Some(d) = &patch.description {
            check_description(d)?;
        }
        let (channel, group) = self.group_of(account, channel, id).await?;
        let manager = self.live_manager(&channel, &group).await?;
        if let Some(s) = &patch.subject {
            manager.set_subject(&group.jid, s).await?;
        }
        if let Some(d) = &patch.description {
            manager.set_description(&group.jid, d).await?;
        }
        let info = manager.group_info(&group.jid).await?;
        self.store_group_info(&channel, &info).await
    }

    /// The manager of a group's channel, refusing a group the number left.
    async fn live_manager(&self, channel: &Channel, group: &Group) -> Result<Arc<dyn GroupManager>> {
        if group.left_at.is_some() {
            return Err(Error::conflict("group", "the channel's number left this group"));
        }
        self.group_manager(channel).await
    }

    /// Adds, removes, promotes or demotes `participants` through the
    /// provider, stores the group's new members and records
    /// `group.participants_changed` (with the change and the phones).
    pub async fn change_group_participants(
        &self,
        account: AccountId,
        channel: ChannelId,
        id: GroupId,
        change: ParticipantChange,
        participants: &[Phone],
    ) -> Result<Group> {
        check_participants(participants)?;
        let (channel, mut group) = self.group_of(account, channel, id).await?;
        let manager = self.live_manager(&channel, &group).await?;
        match change {
            ParticipantChange::Add => manager.add_participants(&group.jid, participants).await?,
            ParticipantChange::Remove => manager.remove_participants(&group.jid, participants).await?,
            ParticipantChange::Promote => manager.promote_admins(&group.jid, participants).await?,
            ParticipantChange::Demote => manager.demote_admins(&group.jid, participants).await?,
        }
        let info = manager.group_info(&group.jid).await?;
        group.apply_info(&info, self.now())?;
        let mut payload = group_payload(&group);
        payload["change"] = json!(change.as_str());
        payload["changed"] = json!(participants);
        let event = self.event(account, EventType::GROUP_PARTICIPANTS_CHANGED, &payload);
        self.store.put_group(&group, &event).await
    }

    /// Leaves a group through the provider; the record stays (with its
    /// thread) marked left, with `group.updated`.
    pub async fn leave_group(&self, account: AccountId, channel: ChannelId, id: GroupId) -> Result<Group> {
        let (channel, mut group) = self.group_of(account, channel, id).await?;
        self.live_manager(&channel, &group).await?.leave_group(&group.jid).await?;
        let now = self.now();
        group.left_at = Some(now);
        group.updated_at = now;
        let event = self.event(account, EventType::GROUP_UPDATED, &group_payload(&group));
        self.store.put_group(&group, &event).await
    }

    /// Sends `content` to a group through the provider and stores it in the
    /// group's thread (`sent`) with `group.message_sent`.
    pub async fn send_to_group(
        &self,
        account: AccountId,
        channel: ChannelId,
        id: GroupId,
        content: MessageContent,
    ) -> Result<GroupMessage> {
        content.validate()?;
        let (channel, group) = self.group_of(account, channel, id).await?;
        let receipt = self.live_manager(&channel, &group).await?.send_to_group(&group.jid, &content).await?;
        let message = GroupMessage::outbound(&group, content, receipt.provider_message_id, self.now())?;
        let event = self.event(account, EventType::GROUP_MESSAGE_SENT, &message_payload(&message));
        self.store.insert_group_message(&message, &event).await?;
        Ok(message)
    }

    /// A group's thread, oldest first after `after`, at most `limit` (1..=500).
    pub async fn list_group_messages(
        &self,
        account: AccountId,
        channel: ChannelId,
        id: GroupId,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<GroupMessage>> {
        let (_, group) = self.group_of(account, channel, id).await?;
        self.store.list_group_messages(account, group.id, after, limit).await
    }

    /// Records a message a participant wrote in a group of `channel` (the
    /// provider reported it): a group not stored yet is read from the
    /// provider (or, failing that, stored under its id) first. A repeated
    /// provider id stores nothing; answers whether it was new.
    pub async fn record_group_inbound(&self, channel: &Channel, inbound: InboundGroupMessage) -> Result<bool> {
        check_group_jid(&inbound.group)?;
        let group = match self.store.find_group(channel.account_id, channel.id, &inbound.group).await? {
            Some(g) => g,
            None => {
                let info = match self.group_manager(channel).await {
                    Ok(m) => m.group_info(&inbound.group).await.ok(),
                    Err(_) => None,
                };
                let info = info.unwrap_or_else(|| GroupInfo {
                    jid: inbound.group.clone(),
                    subject: inbound.group.clone(),
                    description: None,
                    participants: Vec::new(),
                });
                self.store_group_info(channel, &info).await?
            }
        };
        let now = self.now();
        let message = GroupMessage::inbound(
            &group,
            inbound.sender,
            inbound.sender_name,
            inbound.content,
            inbound.provider_message_id,
            inbound.sent_at.unwrap_or(now),
            now,
        )?;
        let event = self.event(channel.account_id, EventType::GROUP_MESSAGE_RECEIVED, &message_payload(&message));
        self.store.insert_group_message(&message, &event).await
    }

    /// Applies a receipt to a group message (by the provider's id), per
    /// participant when the provider says whose; statuses never move
    /// backwards. [`Error::NotFound`] when no group message has this id.
    pub async fn apply_group_receipt(
        &self,
        account: AccountId,
        provider_message_id: &str,
        participant: Option<&Phone>,
        status: MessageStatus,
    ) -> Result<GroupMessage> {
        let now = self.now();
        self.store.apply_group_receipt(account, provider_message_id, participant, status, now).await
    }
}
