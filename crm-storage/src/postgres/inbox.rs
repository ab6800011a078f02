//! [`InboxStore`] over PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crm_core::domain::inbox::{InboxPage, InboxQuery, ThreadState};
use crm_core::ports::store::check_event_account;
use crm_core::{AccountId, ContactId, Error, Event, InboxStore, Message, MessageId, Result, UserId};

use super::{PgStore, append, commit};
use crate::error::db;
use crate::rows::inbox::filter_args;
use crate::rows::inbox::{
    ASSIGN, LIST_INBOX_AFTER_PG, LIST_INBOX_PG, MARK_READ, USER_OF_ACCOUNT, state_row, summary_row,
};

#[async_trait]
impl InboxStore for PgStore {
    async fn list_inbox(&self, account: AccountId, query: &InboxQuery) -> Result<InboxPage> {
        query.check()?;
        let (filter, user) = filter_args(query.filter);
        let sql = if query.after.is_some() { LIST_INBOX_AFTER_PG } else { LIST_INBOX_PG };
        let mut q = sqlx::query(sql).bind(account.into_uuid()).bind(filter).bind(user).bind(i64::from(query.limit) + 1);
        if let Some(after) = query.after {
            q = q.bind(after.activity_at).bind(after.contact_id.into_uuid());
        }
        // On the fast lane like every other shared read (no release ping).
        let mut conn = self.lane.lease().await.map_err(|e| db("listing the inbox", e))?;
        let rows = q.fetch_all(&mut *conn).await;
        let rows = conn.settle(rows).map_err(|e| db("listing the inbox", e))?;
        let threads = rows.iter().map(summary_row).collect::<Result<Vec<_>>>()?;
        Ok(InboxPage::from_overfetch(threads, query.limit))
    }

    async fn thread_state(&self, account: AccountId, contact: ContactId) -> Result<ThreadState> {
        crate::rows::inbox::thread_state(self, account, contact).await
    }

    async fn mark_thread_read(
        &self,
        account: AccountId,
        contact: ContactId,
        user: UserId,
        through: MessageId,
        at: DateTime<Utc>,
    ) -> Result<ThreadState> {
        let mut tx = self.write().await?;
        let row = sqlx::query(MARK_READ)
            .bind(account.into_uuid())
            .bind(contact.into_uuid())
            .bind(through.into_uuid())
            .bind(at)
            .bind(user.into_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("marking a thread read", e))?;
        let state = row.map(|r| state_row(&r)).transpose()?.ok_or(Error::not_found("contact"))?;
        commit(tx).await?;
        Ok(state)
    }

    async fn assign_thread(
        &self,
        account: AccountId,
        contact: ContactId,
        assignee: Option<UserId>,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<ThreadState> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        if let Some(user) = assignee {
            let found = sqlx::query(USER_OF_ACCOUNT)
                .bind(user.into_uuid())
                .bind(account.into_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| db("looking up a user", e))?;
            if found.is_none() {
                return Err(Error::not_found("user"));
            }
        }
        let row = sqlx::query(ASSIGN)
            .bind(account.into_uuid())
            .bind(contact.into_uuid())
            .bind(assignee.map(UserId::into_uuid))
            .bind(at)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("assigning a thread", e))?;
        let state = row.map(|r| state_row(&r)).transpose()?.ok_or(Error::not_found("contact"))?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(state)
    }

    async fn recent_thread(
        &self,
        account: AccountId,
        contact: ContactId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        crate::rows::inbox::recent_thread(self, account, contact, before, limit).await
    }
}
