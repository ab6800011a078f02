//! Groups: row decoding and the reads both dialects share.

use crm_core::domain::group::{Group, GroupMessage};
use crm_core::{AccountId, ChannelId, Direction, Error, GroupId, MessageId, MessageStatus, Phone, Result};
use uuid::Uuid;

use super::{Columns, Fetch, json_from, stored};

/// A `channel_groups` row.
pub(crate) fn group_row(r: &impl Columns) -> Result<Group> {
    Ok(Group {
        id: GroupId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        channel_id: ChannelId::from_uuid(r.uuid("channel_id")?),
        jid: r.text("jid")?,
        subject: r.text("subject")?,
        description: r.opt_text("description")?,
        participants: json_from("participants", r.json("participants")?)?,
        left_at: r.opt_time("left_at")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// A `group_messages` row.
pub(crate) fn group_message_row(r: &impl Columns) -> Result<GroupMessage> {
    Ok(GroupMessage {
        id: MessageId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        channel_id: ChannelId::from_uuid(r.uuid("channel_id")?),
        group_id: GroupId::from_uuid(r.uuid("group_id")?),
        direction: r.parsed("direction", Direction::parse)?,
        sender: r.opt_text("sender")?.map(|s| stored("sender", Phone::parse(&s))).transpose()?,
        sender_name: r.opt_text("sender_name")?,
        content: json_from("content", r.json("content")?)?,
        provider_message_id: r.opt_text("provider_message_id")?,
        status: r.parsed("status", MessageStatus::parse)?,
        receipts: json_from("receipts", r.json("receipts")?)?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// [`GroupStore::get_group`](crm_core::GroupStore::get_group).
pub(crate) async fn get_group(db: &impl Fetch, account: AccountId, id: GroupId) -> Result<Group> {
    let sql = "SELECT * FROM channel_groups WHERE account_id = $1 AND id = $2";
    let row = db.fetch_optional("reading a group", sql, vec![account.into_uuid().into(), id.into_uuid().into()]);
    row.await?.map(|r| group_row(&r)).transpose()?.ok_or(Error::not_found("group"))
}

/// [`GroupStore::find_group`](crm_core::GroupStore::find_group).
pub(crate) async fn find_group(
    db: &impl Fetch,
    account: AccountId,
    channel: ChannelId,
    jid: &str,
) -> Result<Option<Group>> {
    let sql = "SELECT * FROM channel_groups WHERE account_id = $1 AND channel_id = $2 AND jid = $3";
    let args = vec![account.into_uuid().into(), channel.into_uuid().into(), jid.into()];
    db.fetch_optional("finding a group", sql, args).await?.map(|r| group_row(&r)).transpose()
}

/// [`GroupStore::list_groups`](crm_core::GroupStore::list_groups).
pub(crate) async fn list_groups(db: &impl Fetch, account: AccountId, channel: ChannelId) -> Result<Vec<Group>> {
    let sql = "SELECT * FROM channel_groups WHERE account_id = $1 AND channel_id = $2 ORDER BY subject, id";
    let rows = db.fetch_all("listing groups", sql, vec![account.into_uuid().into(), channel.into_uuid().into()]);
    rows.await?.iter().map(group_row).collect()
}

/// [`GroupStore::list_group_messages`](crm_core::GroupStore::list_group_messages)
/// (the limit already checked).
pub(crate) async fn list_group_messages(
    db: &impl Fetch,
    account: AccountId,
    group: GroupId,
    after: Option<MessageId>,
    limit: u32,
) -> Result<Vec<GroupMessage>> {
    let sql = "SELECT * FROM group_messages WHERE account_id = $1 AND group_id = $2 AND id > $3 ORDER BY id LIMIT $4";
    let args = vec![
        account.into_uuid().into(),
        group.into_uuid().into(),
        after.map_or(Uuid::nil(), MessageId::into_uuid).into(),
        i64::from(limit).into(),
    ];
    db.fetch_all("listing group messages", sql, args).await?.iter().map(group_message_row).collect()
}

/// [`GroupStore::find_group_message`](crm_core::GroupStore::find_group_message).
pub(crate) async fn find_group_message(
    db: &impl Fetch,
    account: AccountId,
    provider_message_id: &str,
) -> Result<Option<GroupMessage>> {
    let sql = "SELECT * FROM group_messages WHERE account_id = $1 AND provider_message_id = $2";
    let args = vec![account.into_uuid().into(), provider_message_id.into()];
    db.fetch_optional("finding a group message", sql, args).await?.map(|r| group_message_row(&r)).transpose()
}

/// The UPSERT of [`GroupStore::put_group`](crm_core::GroupStore::put_group):
/// `$1` id, `$2` account, `$3` channel, `$4` jid, `$5` subject, `$6`
/// description, `$7` participants, `$8` left, `$9` created, `$10` updated.
pub(crate) const PUT_GROUP: &str = "INSERT INTO channel_groups (id, account_id, channel_id, jid, subject, description, \
     participants, left_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (account_id, channel_id, jid) DO UPDATE SET subject = excluded.subject, \
     description = excluded.description, participants = excluded.participants, left_at = excluded.left_at, \
     updated_at = excluded.updated_at RETURNING *";

/// Whether the group exists in the account: `$1` group, `$2` account.
pub(crate) const GROUP_EXISTS: &str = "SELECT 1 FROM channel_groups WHERE id = $1 AND account_id = $2";

/// The INSERT of a group message, nothing on a taken provider id: `$1` id,
/// `$2` account, `$3` channel, `$4` group, `$5` direction, `$6` sender,
/// `$7` sender name, `$8` content, `$9` provider id, `$10` status, `$11`
/// receipts, `$12` created, `$13` updated.
pub(crate) const INSERT_GROUP_MESSAGE: &str = "INSERT INTO group_messages (id, account_id, channel_id, group_id, \
     direction, sender, sender_name, content, provider_message_id, status, receipts, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
     ON CONFLICT (account_id, provider_message_id) WHERE provider_message_id IS NOT NULL DO NOTHING";

/// The receipt UPDATE: `$1` status, `$2` receipts, `$3` updated, `$4` id.
pub(crate) const UPDATE_GROUP_RECEIPTS: &str =
    "UPDATE group_messages SET status = $1, receipts = $2, updated_at = $3 WHERE id = $4";
