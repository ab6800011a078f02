//! [`MessageStore`] over PostgreSQL.

use async_trait::async_trait;

use crm_core::ports::store::check_event_account;
use crm_core::{
    AccountId, ChannelId, ContactId, Direction, Error, Event, Message, MessageId, MessageStatus, MessageStore, Page,
    PageRequest, Result, StatusUpdate,
};

use super::{PgStore, append, commit, exists};
use crate::error::db;
use crate::rows::messages::message_row;
use crate::rows::to_json;

#[async_trait]
impl MessageStore for PgStore {
    async fn insert_message(&self, message: &Message, event: &Event) -> Result<()> {
        check_event_account(message.account_id, event)?;
        let content = to_json("content", &message.content)?;
        let error = message.error.as_ref().map(|e| to_json("error", e)).transpose()?;
        let cid = message.contact_id.into_uuid();
        let mut tx = self.write().await?;
        if !exists(
            &mut tx,
            "SELECT 1 FROM contacts WHERE id = $1 AND account_id = $2 FOR UPDATE",
            cid,
            message.account_id,
        )
        .await?
        {
            return Err(Error::not_found("contact"));
        }
        sqlx::query(
            "INSERT INTO messages (id, account_id, contact_id, direction, kind, content, status, \
             channel_id, client_reference, provider_message_id, error, created_at, sent_at, delivered_at, read_at, \
             failed_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(message.id.into_uuid())
        .bind(message.account_id.into_uuid())
        .bind(cid)
        .bind(message.direction.as_str())
        .bind(message.kind().as_str())
        .bind(content)
        .bind(message.status.as_str())
        .bind(message.channel_id.map(ChannelId::into_uuid))
        .bind(message.client_reference.as_deref())
        .bind(message.provider_message_id.as_deref())
        .bind(error)
        .bind(message.created_at)
        .bind(message.sent_at)
        .bind(message.delivered_at)
        .bind(message.read_at)
        .bind(message.failed_at)
        .bind(message.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("inserting a message", e))?;
        let sql = match message.direction {
            Direction::Inbound => {
                "UPDATE contacts SET last_inbound_at = $1 WHERE id = $2 \
                 AND (last_inbound_at IS NULL OR last_inbound_at < $1)"
            }
            Direction::Outbound => {
                "UPDATE contacts SET last_outbound_at = $1 WHERE id = $2 \
                 AND (last_outbound_at IS NULL OR last_outbound_at < $1)"
            }
        };
        sqlx::query(sql)
            .bind(message.created_at)
            .bind(cid)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("updating a contact's last message time", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_message(&self, account: AccountId, id: MessageId) -> Result<Message> {
        crate::rows::messages::get_message(self, account, id).await
    }

    async fn find_message_by_provider_id(
        &self,
        account: AccountId,
        provider_message_id: &str,
    ) -> Result<Option<Message>> {
        crate::rows::messages::find_message_by_provider_id(self, account, provider_message_id).await
    }

    async fn update_message_status(
        &self,
        account: AccountId,
        id: MessageId,
        update: &StatusUpdate,
        event: &Event,
    ) -> Result<Option<Message>> {
        check_event_account(account, event)?;
        let predecessors: Vec<&str> = MessageStatus::predecessors(update.status).iter().map(|s| s.as_str()).collect();
        let error = update.error.as_ref().map(|e| to_json("error", e)).transpose()?;
        let sql = match update.status {
            MessageStatus::Sent => {
                "UPDATE messages SET status = $1, sent_at = $2, \
                 provider_message_id = COALESCE(provider_message_id, $3), updated_at = $2 \
                 WHERE id = $4 AND account_id = $5 AND status = ANY($6) RETURNING *"
            }
            MessageStatus::Delivered => {
                "UPDATE messages SET status = $1, delivered_at = $2, \
                 provider_message_id = COALESCE(provider_message_id, $3), updated_at = $2 \
                 WHERE id = $4 AND account_id = $5 AND status = ANY($6) RETURNING *"
            }
            MessageStatus::Read => {
                "UPDATE messages SET status = $1, read_at = $2, \
                 provider_message_id = COALESCE(provider_message_id, $3), updated_at = $2 \
                 WHERE id = $4 AND account_id = $5 AND status = ANY($6) RETURNING *"
            }
            MessageStatus::Failed => {
                "UPDATE messages SET status = $1, failed_at = $2, error = $7, \
                 provider_message_id = COALESCE(provider_message_id, $3), updated_at = $2 \
                 WHERE id = $4 AND account_id = $5 AND status = ANY($6) RETURNING *"
            }
            MessageStatus::Queued => {
                "UPDATE messages SET status = $1, \
                 provider_message_id = COALESCE(provider_message_id, $3), updated_at = $2 \
                 WHERE id = $4 AND account_id = $5 AND status = ANY($6) RETURNING *"
            }
        };
        let mut tx = self.write().await?;
        let mut q = sqlx::query(sql)
            .bind(update.status.as_str())
            .bind(update.at)
            .bind(update.provider_message_id.as_deref())
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .bind(predecessors);
        if update.status == MessageStatus::Failed {
            q = q.bind(error);
        }
        let row = q.fetch_optional(&mut *tx).await.map_err(|e| db("updating a message status", e))?;
        let Some(row) = row else {
            let found =
                exists(&mut tx, "SELECT 1 FROM messages WHERE id = $1 AND account_id = $2", id.into_uuid(), account)
                    .await?;
            return if found { Ok(None) } else { Err(Error::not_found("message")) };
        };
        let message = message_row(&row)?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(Some(message))
    }

    async fn list_thread(&self, account: AccountId, contact: ContactId, page: &PageRequest) -> Result<Page<Message>> {
        crate::rows::messages::list_thread(self, account, contact, page).await
    }

    async fn find_message_by_client_reference(&self, account: AccountId, reference: &str) -> Result<Option<Message>> {
        crate::rows::messages::find_message_by_client_reference(self, account, reference).await
    }
}
