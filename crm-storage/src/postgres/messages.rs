//! [`MessageStore`] over PostgreSQL.

use async_trait::async_trait;

use chrono::{DateTime, Utc};
use crm_core::ports::store::check_event_account;
use crm_core::{
    AccountId, ChannelId, ContactId, Direction, Error, Event, Message, MessageAnnotation, MessageId, MessageStatus,
    MessageStore, Page, PageRequest, Result, StatusUpdate,
};

use super::{PgStore, append, commit};

/// `update_message_status` as one statement: `$set` sets the new status's
/// own columns (`$2` is the time, `$7` the error); the message moves when
/// its status is one of `$6`, and only then is the event (`$8`–`$11`)
/// appended and queued for every consumer whose filter it passes. Answers
/// the updated message, or no row.
macro_rules! status_update_sql {
    ($set:literal) => {
        concat!(
            "WITH u AS ( \
                 UPDATE messages SET status = $1, ",
            $set,
            " \
                 provider_message_id = COALESCE(provider_message_id, $3), updated_at = $2, \
                 pricing = COALESCE($12, pricing) \
                 WHERE id = $4 AND account_id = $5 AND status = ANY($6) RETURNING * \
             ), e AS ( \
                 INSERT INTO events (id, account_id, type, payload, occurred_at) \
                 SELECT $8, $5, $9, $10, $11 FROM u RETURNING id, type \
             ), queued AS ( \
                 INSERT INTO outbox (consumer, event_id) SELECT c.name, e.id FROM outbox_consumers c CROSS JOIN e \
                 WHERE ",
            consumer_wants!(),
            " \
             ) \
             SELECT * FROM u"
        )
    };
}

/// `insert_message` as one statement over the contact's `$column`
/// (`last_inbound_at` or `last_outbound_at`): locks the contact of the
/// account `FOR KEY SHARE` (a delete needs the row exclusively, so a message
/// never outlives its contact's delete, while sends to one contact do not
/// block each other), inserts the message only when the contact was found,
/// moves the contact's time forward (`$wait`: `""` waits for the row,
/// `"SKIP LOCKED"` leaves the move to a concurrent send that holds it),
/// appends the event and queues it for every consumer whose filter it
/// passes. Data-modifying CTEs run to completion in one snapshot whether or
/// not the outer query reads them; the outbox's foreign key is checked at the
/// end of the statement, when the event is there. Answers how many messages
/// were stored (0: no such contact).
macro_rules! insert_message_sql {
    ($column:literal, $wait:literal) => {
        concat!(
            "WITH found AS ( \
                 SELECT id FROM contacts WHERE id = $3 AND account_id = $2 FOR KEY SHARE \
             ), m AS ( \
                 INSERT INTO messages (id, account_id, contact_id, direction, kind, content, status, channel_id, \
                     client_reference, provider_message_id, error, created_at, sent_at, delivered_at, read_at, \
                     failed_at, updated_at, reply_to, fallback, attachment, pricing) \
                 SELECT $1, $2, found.id, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                     $22, $23, $24, $25 FROM found \
                 RETURNING contact_id \
             ), moved AS ( \
                 UPDATE contacts SET ",
            $column,
            " = $12 WHERE id IN ( \
                     SELECT id FROM contacts WHERE id = $3 AND account_id = $2 AND EXISTS (SELECT 1 FROM m) \
                     AND (",
            $column,
            " IS NULL OR ",
            $column,
            " < $12) \
                     FOR NO KEY UPDATE ",
            $wait,
            " \
                 ) \
             ), e AS ( \
                 INSERT INTO events (id, account_id, type, payload, occurred_at) \
                 SELECT $18, $2, $19, $20, $21 FROM m RETURNING id, type \
             ), queued AS ( \
                 INSERT INTO outbox (consumer, event_id) SELECT c.name, e.id FROM outbox_consumers c CROSS JOIN e \
                 WHERE ",
            consumer_wants!(),
            " \
             ) \
             SELECT count(*) FROM m"
        )
    };
}
use crate::error::db;
use crate::rows::messages::message_row;
use crate::rows::to_json;

#[async_trait]
impl MessageStore for PgStore {
    async fn insert_message(&self, message: &Message, event: &Event) -> Result<()> {
        check_event_account(message.account_id, event)?;
        let content = to_json("content", &message.content)?;
        let error = message.error.as_ref().map(|e| to_json("error", e)).transpose()?;
        let reply_to = message.reply_to.as_ref().map(|v| to_json("reply_to", v)).transpose()?;
        let fallback = message.fallback.as_ref().map(|v| to_json("fallback", v)).transpose()?;
        let attachment = message.attachment.as_ref().map(|v| to_json("attachment", v)).transpose()?;
        let pricing = message.pricing.as_ref().map(|v| to_json("pricing", v)).transpose()?;
        let sql = match message.direction {
            // An inbound message waits for the contact's row, so the
            // 24-hour window always starts at the latest inbound message.
            Direction::Inbound => insert_message_sql!("last_inbound_at", ""),
            // Sends to one contact do not queue behind each other on its row:
            // while another send is moving `last_outbound_at` (to a time a
            // moment earlier), this one leaves it to that send.
            Direction::Outbound => insert_message_sql!("last_outbound_at", "SKIP LOCKED"),
        };
        // One statement in its own transaction: one round trip and one commit.
        let mut conn = self.lane.lease().await.map_err(|e| db("inserting a message", e))?;
        let stored: std::result::Result<i64, _> = sqlx::query_scalar(sql)
            .bind(message.id.into_uuid())
            .bind(message.account_id.into_uuid())
            .bind(message.contact_id.into_uuid())
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
            .bind(event.id.into_uuid())
            .bind(event.event_type.as_str())
            .bind(&event.payload)
            .bind(event.occurred_at)
            .bind(reply_to)
            .bind(fallback)
            .bind(attachment)
            .bind(pricing)
            .fetch_one(&mut *conn)
            .await;
        let stored = conn.settle(stored).map_err(|e| db("inserting a message", e))?;
        if stored == 0 { Err(Error::not_found("contact")) } else { Ok(()) }
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
        let pricing = update.pricing.as_ref().map(|p| to_json("pricing", p)).transpose()?;
        let sql = match update.status {
            MessageStatus::Sent => status_update_sql!("sent_at = $2,"),
            MessageStatus::Delivered => status_update_sql!("delivered_at = $2,"),
            MessageStatus::Read => status_update_sql!("read_at = $2,"),
            MessageStatus::Failed => status_update_sql!("failed_at = $2, error = $7,"),
            MessageStatus::Queued => status_update_sql!(""),
        };
        // One statement in its own transaction: the conditional update, and
        // the event with its outbox rows only when a row was updated.
        let mut conn = self.lane.lease().await.map_err(|e| db("updating a message status", e))?;
        let row = sqlx::query(sql)
            .bind(update.status.as_str())
            .bind(update.at)
            .bind(update.provider_message_id.as_deref())
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .bind(predecessors)
            .bind(error)
            .bind(event.id.into_uuid())
            .bind(event.event_type.as_str())
            .bind(&event.payload)
            .bind(event.occurred_at)
            .bind(pricing)
            .fetch_optional(&mut *conn)
            .await;
        let row = conn.settle(row).map_err(|e| db("updating a message status", e))?;
        match row {
            Some(row) => Ok(Some(message_row(&row)?)),
            None => {
                let found = sqlx::query("SELECT 1 FROM messages WHERE id = $1 AND account_id = $2")
                    .bind(id.into_uuid())
                    .bind(account.into_uuid())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| db("looking up a row", e))?
                    .is_some();
                if found { Ok(None) } else { Err(Error::not_found("message")) }
            }
        }
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
        let attachment = annotation.attachment.as_ref().map(|v| to_json("attachment", v)).transpose()?;
        let pricing = annotation.pricing.as_ref().map(|v| to_json("pricing", v)).transpose()?;
        let swap = annotation.fallback.as_ref();
        let kind = swap.map(|f| f.content.kind().as_str());
        let content = swap.map(|f| to_json("content", &f.content)).transpose()?;
        let fallback = swap.map(|f| to_json("fallback", &f.fallback)).transpose()?;
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "UPDATE messages SET attachment = COALESCE($1, attachment), pricing = COALESCE($2, pricing), \
             kind = COALESCE($3, kind), content = COALESCE($4, content), fallback = COALESCE($5, fallback) \
             WHERE id = $6 AND account_id = $7 AND (NOT $8 OR status = 'queued') RETURNING *",
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
