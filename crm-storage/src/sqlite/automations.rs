//! [`AutomationStore`] over SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crm_core::domain::automation::{Automation, AutomationId, AutomationRun, AutomationRunId, AutomationVersion};
use crm_core::domain::scoring::{ScoreChange, ScoringModel};
use crm_core::ports::automations::check_score_change;
use crm_core::ports::store::check_event_account;
use crm_core::{AccountId, AutomationStore, Contact, ContactId, Error, Event, EventId, Page, PageRequest, Result};

use super::{SqliteStore, Tx, append, commit, exists, json_string};
use crate::error::db;
use crate::rows::automations as rows;
use crate::rows::micros;

const STALE: &str = "it was changed by someone else; reload and retry";

async fn rule_exists(tx: &mut Tx, account: AccountId, id: AutomationId) -> Result<bool> {
    exists(tx, "SELECT 1 FROM automations WHERE id = ? AND account_id = ?", id.into_uuid(), account).await
}

/// Stores a version record of `rule` (its current version).
async fn insert_version(tx: &mut Tx, v: &AutomationVersion) -> Result<()> {
    sqlx::query(
        "INSERT INTO automation_versions (automation_id, version, name, definition, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(v.automation_id.into_uuid())
    .bind(i64::from(v.version))
    .bind(&v.name)
    .bind(json_string("definition", &v.definition)?)
    .bind(micros(v.created_at))
    .execute(&mut **tx)
    .await
    .map_err(|e| db("storing an automation version", e))?;
    Ok(())
}

#[async_trait]
impl AutomationStore for SqliteStore {
    async fn insert_automation(&self, rule: &Automation, event: &Event) -> Result<()> {
        check_event_account(rule.account_id, event)?;
        rule.definition.validate()?;
        let mut stored = rule.clone();
        stored.version = 1;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO automations (id, account_id, name, enabled, trigger_event, definition, version, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
        )
        .bind(rule.id.into_uuid())
        .bind(rule.account_id.into_uuid())
        .bind(&rule.name)
        .bind(rule.enabled)
        .bind(rule.definition.trigger.event_type())
        .bind(json_string("definition", &rule.definition)?)
        .bind(micros(rule.created_at))
        .bind(micros(rule.updated_at))
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
            "UPDATE automations SET name = ?, trigger_event = ?, definition = ?, version = version + 1, updated_at = ? \
             WHERE id = ? AND account_id = ? AND version = ?",
        )
        .bind(&rule.name)
        .bind(rule.definition.trigger.event_type())
        .bind(json_string("definition", &rule.definition)?)
        .bind(micros(rule.updated_at))
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
        let row = sqlx::query("SELECT * FROM automations WHERE id = ?")
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
            "UPDATE automations SET enabled = ?, updated_at = ? WHERE id = ? AND account_id = ? RETURNING *",
        )
        .bind(enabled)
        .bind(micros(now))
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
        let done = sqlx::query("DELETE FROM automations WHERE id = ? AND account_id = ?")
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
             next_step, steps, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
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
        .bind(json_string("steps", &run.steps)?)
        .bind(micros(run.started_at))
        .bind(micros(run.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("starting an automation run", e))?;
        if done.rows_affected() == 1 {
            commit(tx).await?;
            return Ok((run.clone(), true));
        }
        let row = sqlx::query("SELECT * FROM automation_runs WHERE automation_id = ? AND event_id = ?")
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
            "UPDATE automation_runs SET status = ?, reason = ?, next_step = ?, steps = ?, updated_at = ? \
             WHERE id = ? AND account_id = ?",
        )
        .bind(run.status.as_str())
        .bind(run.reason.as_deref())
        .bind(i64::from(run.next_step))
        .bind(json_string("steps", &run.steps)?)
        .bind(micros(run.updated_at))
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
            "SELECT COUNT(*) FROM automation_runs WHERE automation_id = ? AND contact_id = ? AND started_at >= ? \
             AND account_id = ?",
        )
        .bind(rule.into_uuid())
        .bind(contact.into_uuid())
        .bind(micros(since))
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
            "INSERT INTO scoring_models (account_id, model, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (account_id) DO UPDATE SET model = excluded.model, updated_at = excluded.updated_at",
        )
        .bind(account.into_uuid())
        .bind(json_string("model", model)?)
        .bind(micros(now))
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
            "SELECT 1 FROM contacts WHERE id = ? AND account_id = ?",
            contact.id.into_uuid(),
            contact.account_id,
        )
        .await?
        {
            return Err(Error::not_found("contact"));
        }
        let done = sqlx::query(
            "INSERT INTO score_history (id, account_id, contact_id, old_score, new_score, new_stage, reason, event_id, \
             cause, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (contact_id, cause) DO NOTHING",
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
        .bind(micros(change.at))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("storing a score change", e))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let moved = sqlx::query(
            "UPDATE contacts SET lead_score = ?, lead_stage = ?, updated_at = ?, version = version + 1 \
             WHERE id = ? AND account_id = ? AND version = ?",
        )
        .bind(i64::from(contact.lead_score))
        .bind(contact.lead_stage.as_str())
        .bind(micros(contact.updated_at))
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
