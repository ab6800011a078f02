//! [`GroupStore`] over SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crm_core::domain::group::{Group, GroupMessage};
use crm_core::ports::groups::{check_group, check_group_message_limit};
use crm_core::ports::store::check_event_account;
use crm_core::{AccountId, ChannelId, Error, Event, GroupId, GroupStore, MessageId, MessageStatus, Phone, Result};

use super::{SqliteStore, append, commit, json_string, opt_micros};
use crate::error::db;
use crate::rows::groups::{
    GROUP_EXISTS, INSERT_GROUP_MESSAGE, PUT_GROUP, UPDATE_GROUP_RECEIPTS, group_message_row, group_row,
};
use crate::rows::micros;

#[async_trait]
impl GroupStore for SqliteStore {
    async fn put_group(&self, g: &Group, event: &Event) -> Result<Group> {
        check_group(g, event)?;
        let participants = json_string("participants", &g.participants)?;
        let mut tx = self.write().await?;
        let row = sqlx::query(PUT_GROUP)
            .bind(g.id.into_uuid())
            .bind(g.account_id.into_uuid())
            .bind(g.channel_id.into_uuid())
            .bind(g.jid.as_str())
            .bind(g.subject.as_str())
            .bind(g.description.as_deref())
            .bind(participants)
            .bind(opt_micros(g.left_at))
            .bind(micros(g.created_at))
            .bind(micros(g.updated_at))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db("storing a group", e))?;
        let stored = group_row(&row)?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(stored)
    }

    async fn get_group(&self, account: AccountId, id: GroupId) -> Result<Group> {
        crate::rows::groups::get_group(self, account, id).await
    }

    async fn find_group(&self, account: AccountId, channel: ChannelId, jid: &str) -> Result<Option<Group>> {
        crate::rows::groups::find_group(self, account, channel, jid).await
    }

    async fn list_groups(&self, account: AccountId, channel: ChannelId) -> Result<Vec<Group>> {
        crate::rows::groups::list_groups(self, account, channel).await
    }

    async fn insert_group_message(&self, m: &GroupMessage, event: &Event) -> Result<bool> {
        check_event_account(m.account_id, event)?;
        m.check()?;
        let content = json_string("content", &m.content)?;
        let receipts = json_string("receipts", &m.receipts)?;
        let mut tx = self.write().await?;
        let exists = sqlx::query(GROUP_EXISTS)
            .bind(m.group_id.into_uuid())
            .bind(m.account_id.into_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("looking up a group", e))?;
        if exists.is_none() {
            return Err(Error::not_found("group"));
        }
        let done = sqlx::query(INSERT_GROUP_MESSAGE)
            .bind(m.id.into_uuid())
            .bind(m.account_id.into_uuid())
            .bind(m.channel_id.into_uuid())
            .bind(m.group_id.into_uuid())
            .bind(m.direction.as_str())
            .bind(m.sender.as_ref().map(Phone::as_str))
            .bind(m.sender_name.as_deref())
            .bind(content)
            .bind(m.provider_message_id.as_deref())
            .bind(m.status.as_str())
            .bind(receipts)
            .bind(micros(m.created_at))
            .bind(micros(m.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| db("storing a group message", e))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        append(&mut tx, event).await?;
        commit(tx).await?;
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
        crate::rows::groups::list_group_messages(self, account, group, after, limit).await
    }

    async fn find_group_message(&self, account: AccountId, provider_message_id: &str) -> Result<Option<GroupMessage>> {
        crate::rows::groups::find_group_message(self, account, provider_message_id).await
    }

    async fn apply_group_receipt(
        &self,
        account: AccountId,
        provider_message_id: &str,
        participant: Option<&Phone>,
        status: MessageStatus,
        at: DateTime<Utc>,
    ) -> Result<GroupMessage> {
        // BEGIN IMMEDIATE: the read and the write below see no other writer.
        let mut tx = self.write().await?;
        let row = sqlx::query("SELECT * FROM group_messages WHERE account_id = $1 AND provider_message_id = $2")
            .bind(account.into_uuid())
            .bind(provider_message_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("reading a group message", e))?;
        let mut m = group_message_row(&row.ok_or(Error::not_found("group message"))?)?;
        if m.apply_receipt(participant, status, at) {
            sqlx::query(UPDATE_GROUP_RECEIPTS)
                .bind(m.status.as_str())
                .bind(json_string("receipts", &m.receipts)?)
                .bind(micros(m.updated_at))
                .bind(m.id.into_uuid())
                .execute(&mut *tx)
                .await
                .map_err(|e| db("applying a group receipt", e))?;
            commit(tx).await?;
        }
        Ok(m)
    }
}
