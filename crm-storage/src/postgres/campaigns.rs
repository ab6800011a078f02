//! [`CampaignStore`] over PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crm_core::domain::campaign::{PlanProgress, PlannedRecipient, Recipient, RecipientCounts};
use crm_core::ports::campaigns::check_plan;
use crm_core::ports::store::check_event_account;
use crm_core::{
    AccountId, Campaign, CampaignId, CampaignStore, ContactId, Error, Event, MessageId, Page, PageRequest,
    RecipientState, Result,
};

use super::{PgStore, append, commit, exists};
use crate::error::db;
use crate::rows::campaigns::{campaign_row, predecessors_sql};
use crate::rows::to_json;

fn seq(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl CampaignStore for PgStore {
    async fn insert_campaign(&self, c: &Campaign, event: &Event) -> Result<()> {
        check_event_account(c.account_id, event)?;
        let variables = to_json("variables", &c.variables)?;
        let audience = to_json("audience", &c.audience)?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO campaigns (id, account_id, name, channel_id, template_name, template_language, variables, \
             audience, state, scheduled_at, started_at, finished_at, stop_reason, plan_planned, plan_after, plan_done, \
             created_at, updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
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
        .bind(c.scheduled_at)
        .bind(c.started_at)
        .bind(c.finished_at)
        .bind(c.stop_reason.as_deref())
        .bind(seq(c.plan.planned))
        .bind(c.plan.after.map(ContactId::into_uuid))
        .bind(c.plan.done)
        .bind(c.created_at)
        .bind(c.updated_at)
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
            "UPDATE campaigns SET state = $1, scheduled_at = $2, started_at = $3, finished_at = $4, stop_reason = $5, \
             updated_at = $6, version = version + 1 WHERE id = $7 AND account_id = $8 AND version = $9 RETURNING *",
        )
        .bind(c.state.as_str())
        .bind(c.scheduled_at)
        .bind(c.started_at)
        .bind(c.finished_at)
        .bind(c.stop_reason.as_deref())
        .bind(c.updated_at)
        .bind(c.id.into_uuid())
        .bind(c.account_id.into_uuid())
        .bind(c.version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("updating a campaign", e))?;
        let Some(row) = row else {
            let sql = "SELECT 1 FROM campaigns WHERE id = $1 AND account_id = $2";
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
        let deleted = sqlx::query("DELETE FROM campaigns WHERE id = $1 AND account_id = $2 AND version = $3")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting a campaign", e))?
            .rows_affected();
        if deleted == 0 {
            let sql = "SELECT 1 FROM campaigns WHERE id = $1 AND account_id = $2";
            return Err(if exists(&mut tx, sql, id.into_uuid(), account).await? {
                Error::conflict("campaign", "it was changed meanwhile; read it again")
            } else {
                Error::not_found("campaign")
            });
        }
        // The schema cascades; said here too, so a store opened without
        // foreign keys enforced keeps no orphans.
        sqlx::query("DELETE FROM campaign_recipients WHERE campaign_id = $1")
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
            "UPDATE campaigns SET plan_planned = $1, plan_after = $2, plan_done = $3 \
             WHERE id = $4 AND account_id = $5 AND plan_planned = $6",
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
            let sql = "SELECT 1 FROM campaigns WHERE id = $1 AND account_id = $2";
            return if exists(&mut tx, sql, campaign.into_uuid(), account).await? {
                Ok(false)
            } else {
                Err(Error::not_found("campaign"))
            };
        }
        let seqs: Vec<i64> = (0..recipients.len()).map(|i| seq(from.planned + i as u64)).collect();
        let contacts: Vec<Option<uuid::Uuid>> =
            recipients.iter().map(|r| r.contact_id.map(ContactId::into_uuid)).collect();
        let phones: Vec<Option<&str>> = recipients.iter().map(|r| r.phone.as_deref()).collect();
        let states: Vec<&str> = recipients.iter().map(|r| r.state.as_str()).collect();
        let reasons: Vec<Option<&str>> = recipients.iter().map(|r| r.reason.as_deref()).collect();
        sqlx::query(
            "INSERT INTO campaign_recipients (campaign_id, seq, account_id, contact_id, phone, state, reason, updated_at) \
             SELECT $1, r.seq, $2, r.contact_id, r.phone, r.state, r.reason, $3 \
             FROM UNNEST($4::bigint[], $5::uuid[], $6::text[], $7::text[], $8::text[]) \
                  AS r (seq, contact_id, phone, state, reason) \
             ON CONFLICT DO NOTHING",
        )
        .bind(campaign.into_uuid())
        .bind(account.into_uuid())
        .bind(at)
        .bind(seqs)
        .bind(contacts)
        .bind(phones)
        .bind(states)
        .bind(reasons)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("storing recipients", e))?;
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
            "UPDATE campaign_recipients SET state = $1, reason = COALESCE($2, reason), \
             message_id = COALESCE($3, message_id), updated_at = $4 \
             WHERE campaign_id = $5 AND account_id = $6 AND seq = $7 AND state IN {}",
            predecessors_sql(state)
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state.as_str())
            .bind(reason)
            .bind(message.map(MessageId::into_uuid))
            .bind(at)
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
            sqlx::query("SELECT 1 FROM campaign_recipients WHERE campaign_id = $1 AND account_id = $2 AND seq = $3")
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
            "UPDATE campaign_recipients SET state = $1, reason = COALESCE($2, reason), updated_at = $3 \
             WHERE account_id = $4 AND message_id = $5 AND state IN {}",
            predecessors_sql(state)
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state.as_str())
            .bind(reason)
            .bind(at)
            .bind(account.into_uuid())
            .bind(message.into_uuid())
            .execute(self.pool())
            .await
            .map_err(|e| db("moving a recipient", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_recipient_reply(&self, account: AccountId, contact: ContactId, at: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE campaign_recipients SET replied_at = $1 WHERE account_id = $2 AND contact_id = $3 \
             AND replied_at IS NULL AND state IN ('sent', 'delivered', 'read')",
        )
        .bind(at)
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
