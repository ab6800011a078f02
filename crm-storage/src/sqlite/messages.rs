//! [`MessageStore`] over SQLite.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use chrono::{DateTime, Utc};
use crm_core::ports::store::check_event_account;
use crm_core::{
    AccountId, ChannelId, ContactId, Direction, Error, Event, Message, MessageAnnotation, MessageId, MessageStatus,
    MessageStore, Page, PageRequest, Result, StatusUpdate,
};

use super::{SqliteStore, append, commit, exists, json_string, opt_micros};
use crate::error::db;
use crate::rows::messages::message_row;
use crate::rows::micros;

#[async_trait]
impl MessageStore for SqliteStore {
    async fn insert_message(&self, message: &Message, event: &Event) -> Result<()> {
        check_event_account(message.account_id, event)?;
        let content = json_string("content", &message.content)?;
        let error = message.error.as_ref().map(|e| json_string("error", e)).transpose()?;
        let reply_to = message.reply_to.as_ref().map(|v| json_string("reply_to", v)).transpose()?;
        let fallback = message.fallback.as_ref().map(|v| json_string("fallback", v)).transpose()?;
        let attachment = message.attachment.as_ref().map(|v| json_string("attachment", v)).transpose()?;
        let pricing = message.pricing.as_ref().map(|v| json_string("pricing", v)).transpose()?;
        let mut tx = self.write().await?;
        let cid = message.contact_id.into_uuid();
        if !exists(&mut tx, "SELECT 1 FROM contacts WHERE id = ? AND account_id = ?", cid, message.account_id).await? {
            return Err(Error::not_found("contact"));
        }
        sqlx::query(
            "INSERT INTO messages (id, account_id, contact_id, direction, kind, content, status, \
             channel_id, client_reference, provider_message_id, error, created_at, sent_at, delivered_at, read_at, \
             failed_at, updated_at, reply_to, fallback, attachment, pricing) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(micros(message.created_at))
        .bind(opt_micros(message.sent_at))
        .bind(opt_micros(message.delivered_at))
        .bind(opt_micros(message.read_at))
        .bind(opt_micros(message.failed_at))
        .bind(micros(message.updated_at))
        .bind(reply_to)
        .bind(fallback)
        .bind(attachment)
        .bind(pricing)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("inserting a message", e))?;
        let sql = match message.direction {
            Direction::Inbound => {
                "UPDATE contacts SET last_inbound_at = ?1 WHERE id = ?2 \
                 AND (last_inbound_at IS NULL OR last_inbound_at < ?1)"
            }
            Direction::Outbound => {
                "UPDATE contacts SET last_outbound_at = ?1 WHERE id = ?2 \
                 AND (last_outbound_at IS NULL OR last_outbound_at < ?1)"
            }
        };
        sqlx::query(sql)
            .bind(micros(message.created_at))
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
        let predecessors = MessageStatus::predecessors(update.status);
        let error = update.error.as_ref().map(|e| json_string("error", e)).transpose()?;
        let mut tx = self.write().await?;
        let mut row = None;
        if !predecessors.is_empty() {
            let mut b = QueryBuilder::<Sqlite>::new("UPDATE messages SET status = ");
            b.push_bind(update.status.as_str());
            match update.status {
                MessageStatus::Sent => {
                    b.push(", sent_at = ").push_bind(micros(update.at));
                }
                MessageStatus::Delivered => {
                    b.push(", delivered_at = ").push_bind(micros(update.at));
                }
                MessageStatus::Read => {
                    b.push(", read_at = ").push_bind(micros(update.at));
                }
                MessageStatus::Failed => {
                    b.push(", failed_at = ").push_bind(micros(update.at)).push(", error = ").push_bind(error);
                }
                MessageStatus::Queued => {}
            }
            if let Some(p) = &update.pricing {
                b.push(", pricing = ").push_bind(json_string("pricing", p)?);
            }
            b.push(", provider_message_id = COALESCE(provider_message_id, ")
                .push_bind(update.provider_message_id.clone())
                .push("), updated_at = ")
                .push_bind(micros(update.at))
                .push(" WHERE id = ")
                .push_bind(id.into_uuid())
                .push(" AND account_id = ")
                .push_bind(account.into_uuid())
                .push(" AND status IN (");
            let mut sep = b.separated(", ");
            for s in predecessors {
                sep.push_bind(s.as_str());
            }
            b.push(") RETURNING *");
            row = b.build().fetch_optional(&mut *tx).await.map_err(|e| db("updating a message status", e))?;
        }
        let Some(row) = row else {
            let found =
                exists(&mut tx, "SELECT 1 FROM messages WHERE id = ? AND account_id = ?", id.into_uuid(), account)
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

    async fn last_inbound_by_channel(
        &self,
        account: AccountId,
        contact: ContactId,
    ) -> Result<Vec<(Option<ChannelId>, DateTime<Utc>)>> {
        crate::rows::messages::last_inbound_by_channel(self, account, contact).await
    }

    async fn annotate_message(
        &self,
        account: AccountId,
        id: MessageId,
        annotation: &MessageAnnotation,
        event: &Event,
    ) -> Result<Message> {
        check_event_account(account, event)?;
        let attachment = annotation.attachment.as_ref().map(|v| json_string("attachment", v)).transpose()?;
        let pricing = annotation.pricing.as_ref().map(|v| json_string("pricing", v)).transpose()?;
        let swap = annotation.fallback.as_ref();
        let kind = swap.map(|f| f.content.kind().as_str());
        let content = swap.map(|f| json_string("content", &f.content)).transpose()?;
        let fallback = swap.map(|f| json_string("fallback", &f.fallback)).transpose()?;
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "UPDATE messages SET attachment = COALESCE(?, attachment), pricing = COALESCE(?, pricing), \
             kind = COALESCE(?, kind), content = COALESCE(?, content), fallback = COALESCE(?, fallback) \
             WHERE id = ? AND account_id = ? AND (? = 0 OR status = 'queued') RETURNING *",
        )
        .bind(attachment)
        .bind(pricing)
        .bind(kind)
        .bind(content)
        .bind(fallback)
        .bind(id.into_uuid())
        .bind(account.into_uuid())
        .bind(swap.is_some())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("annotating a message", e))?;
        let Some(row) = row else {
            drop(tx);
            return Err(match swap {
                Some(_) => match crate::rows::messages::get_message(self, account, id).await {
                    Ok(_) => Error::conflict("message", "it is no longer queued"),
                    Err(e) => e,
                },
                None => Error::not_found("message"),
            });
        };
        let message = message_row(&row)?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(message)
    }
}
