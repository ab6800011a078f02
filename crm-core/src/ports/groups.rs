//! Groups: the [`GroupManager`] port (a channel's provider managing its
//! WhatsApp groups) and the [`GroupStore`] port (the groups and group
//! threads crm keeps).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt::Debug;

use crate::domain::group::{Group, GroupInfo, GroupMessage, GroupParticipant};
use crate::{
    AccountId, ChannelId, Event, GroupId, MessageContent, MessageId, MessageStatus, Phone, Result, SendReceipt,
};

#[allow(unused_imports)]
use crate::Error;

/// A channel's WhatsApp groups, managed through its provider. A channel's
/// [`Messenger`](crate::Messenger) hands its manager out with
/// [`Messenger::group_manager`](crate::Messenger::group_manager).
///
/// Contract (checked by `crm_core::testing::groups`):
/// - Arguments are checked first, with the checks of
///   [`domain::group`](crate::domain::group): a blank or over-long subject,
///   an over-long description, an empty or repeated participant list, a
///   malformed group id are [`Error::Validation`] and nothing reaches the
///   provider. Participants are [`Phone`]s, so E.164 by construction.
/// - A group the channel's number is not in (never was, or left) is
///   [`Error::NotFound`] (`"group"`) for every operation on it.
/// - `create_group` answers the new group with its members: the channel's
///   own number as admin, the participants as members.
/// - Adding a member already in the group, removing one not in it, or
///   promoting an admin changes nothing and is no error; promoting or
///   demoting someone not in the group is [`Error::Validation`] on
///   `participants`.
/// - `leave_group` leaves: the group is no longer listed and further
///   operations on it are `NotFound`.
/// - `send_to_group` answers the provider's message id, like
///   [`Messenger::send`](crate::Messenger::send).
/// - A provider that does not offer an operation answers
///   [`Error::Unsupported`]; provider failures are [`Error::Provider`] as
///   for sends.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crm_core::{GroupManager, MemoryGroups, Phone};
/// let groups = MemoryGroups::new(Phone::parse("+5511900000000")?);
/// let created = groups.create_group("Clientes VIP", &[Phone::parse("+5511987654321")?]).await?;
/// assert!(created.jid.ends_with("@g.us"));
/// assert_eq!(groups.participants(&created.jid).await?.len(), 2);
/// # Ok::<(), crm_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait GroupManager: Send + Sync + Debug + 'static {
    /// Creates a group named `subject` with `participants`.
    async fn create_group(&self, subject: &str, participants: &[Phone]) -> Result<GroupInfo>;

    /// Renames a group.
    async fn set_subject(&self, group: &str, subject: &str) -> Result<()>;

    /// Sets a group's description (empty clears it).
    async fn set_description(&self, group: &str, description: &str) -> Result<()>;

    /// Adds members.
    async fn add_participants(&self, group: &str, participants: &[Phone]) -> Result<()>;

    /// Removes members.
    async fn remove_participants(&self, group: &str, participants: &[Phone]) -> Result<()>;

    /// Makes members admins.
    async fn promote_admins(&self, group: &str, participants: &[Phone]) -> Result<()>;

    /// Takes members' admin rights away.
    async fn demote_admins(&self, group: &str, participants: &[Phone]) -> Result<()>;

    /// The groups the channel's number is in.
    async fn list_groups(&self) -> Result<Vec<GroupInfo>>;

    /// One group with its members.
    async fn group_info(&self, group: &str) -> Result<GroupInfo>;

    /// A group's members with their admin flag.
    async fn participants(&self, group: &str) -> Result<Vec<GroupParticipant>> {
        Ok(self.group_info(group).await?.participants)
    }

    /// Leaves a group.
    async fn leave_group(&self, group: &str) -> Result<()>;

    /// Sends a message to a group; answers the provider's id.
    async fn send_to_group(&self, group: &str, content: &MessageContent) -> Result<SendReceipt>;
}

/// The groups and group threads crm keeps.
///
/// Contract (checked by `crm_core::testing::store::groups`):
/// - Tenancy as every store: another account's group behaves as a missing one.
/// - A group is unique per (account, channel, WhatsApp id): `put_group`
///   inserts, or replaces the stored one keeping its `id` and
///   `created_at`, and records `event` in the same transaction; it returns
///   the group as stored.
/// - Group messages are unique per (account, provider id):
///   `insert_group_message` stores one with its event, or answers `false`
///   and writes nothing when its provider id is already stored (a repeated
///   inbound report). Its group must exist ([`Error::NotFound`]).
/// - `apply_group_receipt` follows [`GroupMessage::apply_receipt`]: neither
///   the message's status nor a participant's ever moves backwards; it
///   writes no event (receipts are many: one per participant).
#[async_trait]
pub trait GroupStore: Send + Sync + Debug + 'static {
    /// Inserts or replaces a group and records `event` (see the trait).
    async fn put_group(&self, group: &Group, event: &Event) -> Result<Group>;

    /// One group; [`Error::NotFound`] when missing.
    async fn get_group(&self, account: AccountId, id: GroupId) -> Result<Group>;

    /// The group of a channel with this WhatsApp id, if stored.
    async fn find_group(&self, account: AccountId, channel: ChannelId, jid: &str) -> Result<Option<Group>>;

    /// A channel's groups (left ones too), by subject then id.
    async fn list_groups(&self, account: AccountId, channel: ChannelId) -> Result<Vec<Group>>;

    /// Stores a group message and records `event` (see the trait).
    async fn insert_group_message(&self, message: &GroupMessage, event: &Event) -> Result<bool>;

    /// A group's messages after `after` (oldest first), at most `limit` (1..=500).
    async fn list_group_messages(
        &self,
        account: AccountId,
        group: GroupId,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<GroupMessage>>;

    /// The group message with this provider id, if stored.
    async fn find_group_message(&self, account: AccountId, provider_message_id: &str) -> Result<Option<GroupMessage>>;

    /// Applies one receipt to the group message with this provider id;
    /// answers it as stored afterwards ([`Error::NotFound`] when missing).
    async fn apply_group_receipt(
        &self,
        account: AccountId,
        provider_message_id: &str,
        participant: Option<&Phone>,
        status: MessageStatus,
        at: DateTime<Utc>,
    ) -> Result<GroupMessage>;
}

/// Checks a page size of group messages: 1 to 500.
pub fn check_group_message_limit(limit: u32) -> Result<()> {
    if !(1..=500).contains(&limit) {
        return Err(crate::Error::validation("limit", "must be 1 to 500"));
    }
    Ok(())
}

/// Checks the event of a group write: the group's account
/// ([`Error::Validation`] on `event` otherwise), and the group itself.
pub fn check_group(group: &Group, event: &Event) -> Result<()> {
    crate::ports::store::check_event_account(group.account_id, event)?;
    group.check()
}
