//! [`AutomationStore`] over PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crm_core::domain::automation::{Automation, AutomationId, AutomationRun, AutomationRunId, AutomationVersion};
use crm_core::domain::scoring::{ScoreChange, ScoringModel};
use crm_core::ports::automations::check_score_change;
use crm_core::ports::store::check_event_account;
use crm_core::{AccountId, AutomationStore, Contact, ContactId, Error, Event, EventId, Page, PageRequest, Result};

use super::{PgStore, Tx, append, commit, exists};
use crate::error::db;
use crate::rows::automations as rows;
use crate::rows::to_json;

const STALE: &str = "it was changed by someone else; reload and retry";

async fn rule_exists(tx: &mut Tx, account: AccountId, id: AutomationId) -> Result<bool> {
    exists(tx, "SELECT 1 FROM automations WHERE id = $1 AND account_id = $2", id.into_uuid(), account).await
}

/// Stores a version record of `rule` (its current version).
async fn insert_version(tx: &mut Tx, v: &AutomationVersion) -> Result<()> {
    sqlx::query("INSERT INTO automation_versions (automation_id, version, name, definition, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(v.automation_id.into_uuid())
        .bind(i64::from(v.version))
        .bind(&v.name)
        .bind(to_json("definition", &v.definition)?)
        .bind(v.created_at)
        .execute(&mut **tx)
        .await
        .map_err(|e| db("storing an automation version", e))?;
    Ok(())
}

#[async_trait]
impl AutomationStore for PgStore {
    async fn insert_automation(&self, rule: &Automation, event: &Event) -> Result<()> {
        check_event_account(rule.account_id, event)?;
        rule.definition.validate()?;
        let mut stored = rule.clone();
        stored.version = 1;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO automations (id, account_id, name, enabled, trigger_event, definition, version, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)",
        )
        .bind(rule.id.into_uuid())
        .bind(rule.account_id.into_uuid())
        .bind(&rule.name)
        .bind(rule.enabled)
        .bind(rule.definition.trigger.event_type())
        .bind(to_json("definition", &rule.definition)?)
        .bind(rule.created_at)
        .bind(rule.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("inserting an automation", e))?;
        insert_version(&mut tx, &stored.version_record()).await?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn update_automation(&self, rule: &Automation, event: &Event) -> Result<Automation> {
        check_event_account(rule.account_id, event)?;
        rule.definition.validate()?;
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE automations SET name = $1, trigger_event = $2, definition = $3, version = version + 1, updated_at = $4 \
             WHERE id = $5 AND account_id = $6 AND version = $7",
        )
        .bind(&rule.name)
        .bind(rule.definition.trigger.event_type())
        .bind(to_json("definition", &rule.definition)?)
        .bind(rule.updated_at)
        .bind(rule.id.into_uuid())
        .bind(rule.account_id.into_uuid())
        .bind(i64::from(rule.version))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("updating an automation", e))?;
        if done.rows_affected() == 0 {
            return Err(if rule_exists(&mut tx, rule.account_id, rule.id).await? {
                Error::conflict("automation", STALE)
            } else {
                Error::not_found("automation")
            });
        }
        let row = sqlx::query("SELECT * FROM automations WHERE id = $1")
            .bind(rule.id.into_uuid())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db("reading an automation", e))?;
        let stored = rows::automation_row(&row)?;
        insert_version(&mut tx, &stored.version_record()).await?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(stored)
    }

    async fn set_automation_enabled(
        &self,
        account: AccountId,
        id: AutomationId,
        enabled: bool,
        now: DateTime<Utc>,
        event: &Event,
    ) -> Result<Automation> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "UPDATE automations SET enabled = $1, updated_at = $2 WHERE id = $3 AND account_id = $4 RETURNING *",
        )
        .bind(enabled)
        .bind(now)
        .bind(id.into_uuid())
        .bind(account.into_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("enabling an automation", e))?
        .ok_or(Error::not_found("automation"))?;
        let stored = rows::automation_row(&row)?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(stored)
    }

    async fn delete_automation(&self, account: AccountId, id: AutomationId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM automations WHERE id = $1 AND account_id = $2")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting an automation", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("automation"));
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_automation(&self, account: AccountId, id: AutomationId) -> Result<Automation> {
        rows::get_automation(self, account, id).await
    }

    async fn list_automations(&self, account: AccountId, page: &PageRequest) -> Result<Page<Automation>> {
        rows::list_automations(self, account, page).await
    }

    async fn count_automations(&self, account: AccountId) -> Result<u64> {
        rows::count_automations(self, account).await
    }

    async fn enabled_automations(&self, account: AccountId, event_type: &str) -> Result<Vec<Automation>> {
        rows::enabled_automations(self, account, event_type).await
    }

    async fn get_automation_version(
        &self,
        account: AccountId,
        id: AutomationId,
        version: u32,
    ) -> Result<AutomationVersion> {
        rows::get_version(self, account, id, version).await
    }

    async fn list_automation_versions(&self, account: AccountId, id: AutomationId) -> Result<Vec<AutomationVersion>> {
        rows::list_versions(self, account, id).await
    }

    async fn start_run(&self, run: &AutomationRun) -> Result<(AutomationRun, bool)> {
        let mut tx = self.write().await?;
        if !rule_exists(&mut tx, run.account_id, run.automation_id).await? {
            return Err(Error::not_found("automation"));
        }
        let done = sqlx::query(
            "INSERT INTO automation_runs (id, account_id, automation_id, version, event_id, contact_id, status, reason, \
             next_step, steps, started_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (automation_id, event_id) DO NOTHING",
        )
        .bind(run.id.into_uuid())
        .bind(run.account_id.into_uuid())
        .bind(run.automation_id.into_uuid())
        .bind(i64::from(run.version))
        .bind(run.event_id.into_uuid())
        .bind(run.contact_id.map(ContactId::into_uuid))
        .bind(run.status.as_str())
        .bind(run.reason.as_deref())
        .bind(i64::from(run.next_step))
        .bind(to_json("steps", &run.steps)?)
        .bind(run.started_at)
        .bind(run.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("starting an automation run", e))?;
        if done.rows_affected() == 1 {
            commit(tx).await?;
            return Ok((run.clone(), true));
        }
        let row = sqlx::query("SELECT * FROM automation_runs WHERE automation_id = $1 AND event_id = $2")
            .bind(run.automation_id.into_uuid())
            .bind(run.event_id.into_uuid())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db("reading an automation run", e))?;
        Ok((rows::run_row(&row)?, false))
    }

    async fn find_run(&self, account: AccountId, rule: AutomationId, event: EventId) -> Result<Option<AutomationRun>> {
        rows::find_run(self, account, rule, event).await
    }

    async fn save_run(&self, run: &AutomationRun, event: Option<&Event>) -> Result<()> {
        if let Some(e) = event {
            check_event_account(run.account_id, e)?;
        }
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE automation_runs SET status = $1, reason = $2, next_step = $3, steps = $4, updated_at = $5 \
             WHERE id = $6 AND account_id = $7",
        )
        .bind(run.status.as_str())
        .bind(run.reason.as_deref())
        .bind(i64::from(run.next_step))
        .bind(to_json("steps", &run.steps)?)
        .bind(run.updated_at)
        .bind(run.id.into_uuid())
        .bind(run.account_id.into_uuid())
        .execute(&mut *tx)
        .await
        .map_err(|e| db("saving an automation run", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("automation run"));
        }
        if let Some(e) = event {
            append(&mut tx, e).await?;
        }
        commit(tx).await
    }

    async fn get_run(&self, account: AccountId, id: AutomationRunId) -> Result<AutomationRun> {
        rows::get_run(self, account, id).await
    }

    async fn list_runs(
        &self,
        account: AccountId,
        rule: AutomationId,
        page: &PageRequest,
    ) -> Result<Page<AutomationRun>> {
        rows::list_runs(self, account, rule, page).await
    }

    async fn latest_runs(&self, account: AccountId, rule: AutomationId, limit: u32) -> Result<Vec<AutomationRun>> {
        rows::latest_runs(self, account, rule, limit).await
    }

    async fn count_recent_runs(
        &self,
        account: AccountId,
        rule: AutomationId,
        contact: ContactId,
        since: DateTime<Utc>,
    ) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM automation_runs WHERE automation_id = $1 AND contact_id = $2 AND started_at >= $3 \
             AND account_id = $4",
        )
        .bind(rule.into_uuid())
        .bind(contact.into_uuid())
        .bind(since)
        .bind(account.into_uuid())
        .fetch_one(self.pool())
        .await
        .map_err(|e| db("counting automation runs", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn get_scoring_model(&self, account: AccountId) -> Result<Option<ScoringModel>> {
        rows::get_scoring_model(self, account).await
    }

    async fn put_scoring_model(&self, account: AccountId, model: &ScoringModel, now: DateTime<Utc>) -> Result<()> {
        model.validate()?;
        sqlx::query(
            "INSERT INTO scoring_models (account_id, model, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id) DO UPDATE SET model = excluded.model, updated_at = excluded.updated_at",
        )
        .bind(account.into_uuid())
        .bind(to_json("model", model)?)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(|e| db("storing a scoring model", e))?;
        Ok(())
    }

    async fn apply_score_change(
        &self,
        contact: &Contact,
        change: &ScoreChange,
        updated: &Event,
        changed: &Event,
    ) -> Result<bool> {
        check_score_change(contact, change, updated, changed)?;
        let mut tx = self.write().await?;
        if !exists(
            &mut tx,
            "SELECT 1 FROM contacts WHERE id = $1 AND account_id = $2",
            contact.id.into_uuid(),
            contact.account_id,
        )
        .await?
        {
            return Err(Error::not_found("contact"));
        }
        let done = sqlx::query(
            "INSERT INTO score_history (id, account_id, contact_id, old_score, new_score, new_stage, reason, event_id, \
             cause, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (contact_id, cause) DO NOTHING",
        )
        .bind(change.id)
        .bind(change.account_id.into_uuid())
        .bind(change.contact_id.into_uuid())
        .bind(i64::from(change.old_score))
        .bind(i64::from(change.new_score))
        .bind(change.new_stage.map(|s| s.as_str()))
        .bind(&change.reason)
        .bind(change.event_id.map(|e| e.into_uuid()))
        .bind(&change.cause)
        .bind(change.at)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("storing a score change", e))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let moved = sqlx::query(
            "UPDATE contacts SET lead_score = $1, lead_stage = $2, updated_at = $3, version = version + 1 \
             WHERE id = $4 AND account_id = $5 AND version = $6",
        )
        .bind(i64::from(contact.lead_score))
        .bind(contact.lead_stage.as_str())
        .bind(contact.updated_at)
        .bind(contact.id.into_uuid())
        .bind(contact.account_id.into_uuid())
        .bind(contact.version)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("updating a contact's score", e))?;
        if moved.rows_affected() == 0 {
            return Err(Error::conflict("contact", STALE));
        }
        append(&mut tx, updated).await?;
        append(&mut tx, changed).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn has_score_cause(&self, account: AccountId, contact: ContactId, cause: &str) -> Result<bool> {
        rows::has_score_cause(self, account, contact, cause).await
    }

    async fn score_history(
        &self,
        account: AccountId,
        contact: ContactId,
        page: &PageRequest,
    ) -> Result<Page<ScoreChange>> {
        rows::score_history(self, account, contact, page).await
    }
}
