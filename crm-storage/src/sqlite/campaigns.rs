//! [`CampaignStore`] over SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};

use crm_core::domain::campaign::{PlanProgress, PlannedRecipient, Recipient, RecipientCounts};
use crm_core::ports::campaigns::check_plan;
use crm_core::ports::store::check_event_account;
use crm_core::{
    AccountId, Campaign, CampaignId, CampaignStore, ContactId, Error, Event, MessageId, Page, PageRequest,
    RecipientState, Result,
};

use super::{SqliteStore, append, commit, exists, json_string, opt_micros};
use crate::error::db;
use crate::rows::campaigns::{campaign_row, predecessors_sql};
use crate::rows::{BATCH, micros};

fn seq(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl CampaignStore for SqliteStore {
    async fn insert_campaign(&self, c: &Campaign, event: &Event) -> Result<()> {
        check_event_account(c.account_id, event)?;
        let variables = json_string("variables", &c.variables)?;
        let audience = json_string("audience", &c.audience)?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO campaigns (id, account_id, name, channel_id, template_name, template_language, variables, \
             audience, state, scheduled_at, started_at, finished_at, stop_reason, plan_planned, plan_after, plan_done, \
             created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.id.into_uuid())
        .bind(c.account_id.into_uuid())
        .bind(&c.name)
        .bind(c.channel_id.into_uuid())
        .bind(&c.template_name)
        .bind(&c.template_language)
        .bind(variables)
        .bind(audience)
        .bind(c.state.as_str())
        .bind(opt_micros(c.scheduled_at))
        .bind(opt_micros(c.started_at))
        .bind(opt_micros(c.finished_at))
        .bind(c.stop_reason.as_deref())
        .bind(seq(c.plan.planned))
        .bind(c.plan.after.map(ContactId::into_uuid))
        .bind(c.plan.done)
        .bind(micros(c.created_at))
        .bind(micros(c.updated_at))
        .bind(c.version)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("inserting a campaign", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_campaign(&self, account: AccountId, id: CampaignId) -> Result<Campaign> {
        crate::rows::campaigns::get_campaign(self, account, id).await
    }

    async fn list_campaigns(&self, account: AccountId, page: &PageRequest) -> Result<Page<Campaign>> {
        crate::rows::campaigns::list_campaigns(self, account, page).await
    }

    async fn update_campaign(&self, c: &Campaign, event: &Event) -> Result<Campaign> {
        check_event_account(c.account_id, event)?;
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "UPDATE campaigns SET state = ?, scheduled_at = ?, started_at = ?, finished_at = ?, stop_reason = ?, \
             updated_at = ?, version = version + 1 WHERE id = ? AND account_id = ? AND version = ? RETURNING *",
        )
        .bind(c.state.as_str())
        .bind(opt_micros(c.scheduled_at))
        .bind(opt_micros(c.started_at))
        .bind(opt_micros(c.finished_at))
        .bind(c.stop_reason.as_deref())
        .bind(micros(c.updated_at))
        .bind(c.id.into_uuid())
        .bind(c.account_id.into_uuid())
        .bind(c.version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("updating a campaign", e))?;
        let Some(row) = row else {
            let sql = "SELECT 1 FROM campaigns WHERE id = ? AND account_id = ?";
            return Err(if exists(&mut tx, sql, c.id.into_uuid(), c.account_id).await? {
                Error::conflict("campaign", "it was changed meanwhile; read it again")
            } else {
                Error::not_found("campaign")
            });
        };
        let stored = campaign_row(&row)?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(stored)
    }

    async fn delete_campaign(&self, account: AccountId, id: CampaignId, version: i64, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        let deleted = sqlx::query("DELETE FROM campaigns WHERE id = ? AND account_id = ? AND version = ?")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting a campaign", e))?
            .rows_affected();
        if deleted == 0 {
            let sql = "SELECT 1 FROM campaigns WHERE id = ? AND account_id = ?";
            return Err(if exists(&mut tx, sql, id.into_uuid(), account).await? {
                Error::conflict("campaign", "it was changed meanwhile; read it again")
            } else {
                Error::not_found("campaign")
            });
        }
        // The schema cascades; said here too, so a store opened without
        // foreign keys enforced keeps no orphans.
        sqlx::query("DELETE FROM campaign_recipients WHERE campaign_id = ?")
            .bind(id.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting a campaign's recipients", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn plan_recipients(
        &self,
        account: AccountId,
        campaign: CampaignId,
        from: &PlanProgress,
        to: &PlanProgress,
        recipients: &[PlannedRecipient],
        at: DateTime<Utc>,
    ) -> Result<bool> {
        check_plan(from, to, recipients)?;
        let mut tx = self.write().await?;
        let moved = sqlx::query(
            "UPDATE campaigns SET plan_planned = ?, plan_after = ?, plan_done = ? \
             WHERE id = ? AND account_id = ? AND plan_planned = ?",
        )
        .bind(seq(to.planned))
        .bind(to.after.map(ContactId::into_uuid))
        .bind(to.done)
        .bind(campaign.into_uuid())
        .bind(account.into_uuid())
        .bind(seq(from.planned))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("moving a campaign's plan", e))?;
        if moved.rows_affected() == 0 {
            let sql = "SELECT 1 FROM campaigns WHERE id = ? AND account_id = ?";
            return if exists(&mut tx, sql, campaign.into_uuid(), account).await? {
                Ok(false)
            } else {
                Err(Error::not_found("campaign"))
            };
        }
        let rows: Vec<_> = recipients.iter().enumerate().collect();
        for chunk in rows.chunks(BATCH) {
            let mut b = QueryBuilder::<Sqlite>::new(
                "INSERT INTO campaign_recipients (campaign_id, seq, account_id, contact_id, phone, state, reason, \
                 updated_at) ",
            );
            b.push_values(chunk, |mut sep, (i, r)| {
                sep.push_bind(campaign.into_uuid())
                    .push_bind(seq(from.planned + *i as u64))
                    .push_bind(account.into_uuid())
                    .push_bind(r.contact_id.map(ContactId::into_uuid))
                    .push_bind(r.phone.clone())
                    .push_bind(r.state.as_str())
                    .push_bind(r.reason.clone())
                    .push_bind(micros(at));
            });
            b.push(" ON CONFLICT DO NOTHING");
            b.build().execute(&mut *tx).await.map_err(|e| db("storing recipients", e))?;
        }
        commit(tx).await?;
        Ok(true)
    }

    async fn pending_recipients(&self, account: AccountId, campaign: CampaignId, limit: u32) -> Result<Vec<Recipient>> {
        crate::rows::campaigns::pending_recipients(self, account, campaign, limit).await
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "the recipient's key, its move and the time, as the other port methods take them"
    )]
    async fn set_recipient_state(
        &self,
        account: AccountId,
        campaign: CampaignId,
        seq_no: u64,
        state: RecipientState,
        reason: Option<&str>,
        message: Option<MessageId>,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = format!(
            "UPDATE campaign_recipients SET state = ?, reason = COALESCE(?, reason), \
             message_id = COALESCE(?, message_id), updated_at = ? \
             WHERE campaign_id = ? AND account_id = ? AND seq = ? AND state IN {}",
            predecessors_sql(state)
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state.as_str())
            .bind(reason)
            .bind(message.map(MessageId::into_uuid))
            .bind(micros(at))
            .bind(campaign.into_uuid())
            .bind(account.into_uuid())
            .bind(seq(seq_no))
            .execute(self.pool())
            .await
            .map_err(|e| db("moving a recipient", e))?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        let found =
            sqlx::query("SELECT 1 FROM campaign_recipients WHERE campaign_id = ? AND account_id = ? AND seq = ?")
                .bind(campaign.into_uuid())
                .bind(account.into_uuid())
                .bind(seq(seq_no))
                .fetch_optional(self.pool())
                .await
                .map_err(|e| db("looking up a recipient", e))?;
        found.map(|_| false).ok_or(Error::not_found("recipient"))
    }

    async fn set_recipient_state_by_message(
        &self,
        account: AccountId,
        message: MessageId,
        state: RecipientState,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = format!(
            "UPDATE campaign_recipients SET state = ?, reason = COALESCE(?, reason), updated_at = ? \
             WHERE account_id = ? AND message_id = ? AND state IN {}",
            predecessors_sql(state)
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state.as_str())
            .bind(reason)
            .bind(micros(at))
            .bind(account.into_uuid())
            .bind(message.into_uuid())
            .execute(self.pool())
            .await
            .map_err(|e| db("moving a recipient", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_recipient_reply(&self, account: AccountId, contact: ContactId, at: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE campaign_recipients SET replied_at = ? WHERE account_id = ? AND contact_id = ? \
             AND replied_at IS NULL AND state IN ('sent', 'delivered', 'read')",
        )
        .bind(micros(at))
        .bind(account.into_uuid())
        .bind(contact.into_uuid())
        .execute(self.pool())
        .await
        .map_err(|e| db("recording a reply", e))?;
        Ok(done.rows_affected())
    }

    async fn recipient_counts(&self, account: AccountId, campaign: CampaignId) -> Result<RecipientCounts> {
        crate::rows::campaigns::recipient_counts(self, account, campaign).await
    }

    async fn list_recipients(
        &self,
        account: AccountId,
        campaign: CampaignId,
        state: Option<RecipientState>,
        after_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Recipient>> {
        crate::rows::campaigns::list_recipients(self, account, campaign, state, after_seq, limit).await
    }
}
