//! Automation rules (create, edit as a new version, enable, disable, delete,
//! runs, dry run) and lead scoring (the model, score changes, history).

use chrono::Duration;
use serde_json::json;

use super::Crm;
use crate::automation::{DryRun, Engine, SCHEDULE_JOB, schedule_job};
use crate::domain::automation::{
    Automation, AutomationId, AutomationRun, AutomationRunId, AutomationVersion, MAX_AUTOMATIONS_PER_ACCOUNT,
    RuleDefinition, Trigger,
};
use crate::domain::scoring::{ScoreChange, ScoringModel, clamp_score};
use crate::{AccountId, ContactId, Error, Event, EventId, EventType, Page, PageRequest, Result};

/// How many times a score change is tried against concurrent contact writers.
const SCORE_ATTEMPTS: usize = 16;

impl Crm {
    /// Creates an enabled rule at version 1 (`automation.created`).
    /// [`Error::Validation`] on a bad name or rule, or past
    /// [`MAX_AUTOMATIONS_PER_ACCOUNT`] rules. A schedule trigger's first tick
    /// is scheduled as a durable job.
    pub async fn create_automation(
        &self,
        account: AccountId,
        name: &str,
        definition: RuleDefinition,
    ) -> Result<Automation> {
        let rule = Automation::new(account, name, definition, self.now())?;
        if self.store.count_automations(account).await? >= MAX_AUTOMATIONS_PER_ACCOUNT as u64 {
            return Err(Error::validation(
                "automations",
                format!("an account may have at most {MAX_AUTOMATIONS_PER_ACCOUNT} rules"),
            ));
        }
        let event = self.event(account, EventType::AUTOMATION_CREATED, &rule);
        self.store.insert_automation(&rule, &event).await?;
        self.schedule_tick(&rule).await?;
        Ok(rule)
    }

    /// Edits a rule: stores the new name and rule as the next version
    /// (`automation.updated`). With `expected_version`, refuses with
    /// [`Error::Conflict`] when the stored version differs.
    pub async fn update_automation(
        &self,
        account: AccountId,
        id: AutomationId,
        name: &str,
        definition: RuleDefinition,
        expected_version: Option<u32>,
    ) -> Result<Automation> {
        let current = self.store.get_automation(account, id).await?;
        if expected_version.is_some_and(|v| v != current.version) {
            return Err(Error::conflict("automation", "it was changed by someone else; reload and retry"));
        }
        let mut rule = Automation::new(account, name, definition, self.now())?;
        rule.id = id;
        rule.version = current.version;
        rule.created_at = current.created_at;
        rule.enabled = current.enabled;
        let mut next = rule.clone();
        next.version += 1;
        let event = self.event(account, EventType::AUTOMATION_UPDATED, &next);
        let stored = self.store.update_automation(&rule, &event).await?;
        self.schedule_tick(&stored).await?;
        Ok(stored)
    }

    /// Enables or disables a rule (`automation.updated`; the version stays).
    pub async fn set_automation_enabled(
        &self,
        account: AccountId,
        id: AutomationId,
        enabled: bool,
    ) -> Result<Automation> {
        let mut current = self.store.get_automation(account, id).await?;
        let now = self.now();
        current.enabled = enabled;
        current.updated_at = now;
        let event = self.event(account, EventType::AUTOMATION_UPDATED, &current);
        let stored = self.store.set_automation_enabled(account, id, enabled, now, &event).await?;
        self.schedule_tick(&stored).await?;
        Ok(stored)
    }

    /// Deletes a rule with its versions and runs (`automation.deleted`).
    pub async fn delete_automation(&self, account: AccountId, id: AutomationId) -> Result<()> {
        let event = self.event(account, EventType::AUTOMATION_DELETED, &json!({ "id": id }));
        self.store.delete_automation(account, id, &event).await
    }

    /// One rule.
    pub async fn get_automation(&self, account: AccountId, id: AutomationId) -> Result<Automation> {
        self.store.get_automation(account, id).await
    }

    /// A page of rules.
    pub async fn list_automations(&self, account: AccountId, page: &PageRequest) -> Result<Page<Automation>> {
        self.store.list_automations(account, page).await
    }

    /// A rule's versions, oldest first.
    pub async fn automation_versions(&self, account: AccountId, id: AutomationId) -> Result<Vec<AutomationVersion>> {
        self.store.list_automation_versions(account, id).await
    }

    /// One version of a rule.
    pub async fn automation_version(
        &self,
        account: AccountId,
        id: AutomationId,
        version: u32,
    ) -> Result<AutomationVersion> {
        self.store.get_automation_version(account, id, version).await
    }

    /// A rule's `limit` most recent runs, newest first.
    pub async fn latest_automation_runs(
        &self,
        account: AccountId,
        id: AutomationId,
        limit: u32,
    ) -> Result<Vec<AutomationRun>> {
        self.store.latest_runs(account, id, limit).await
    }

    /// A page of a rule's runs, oldest first.
    pub async fn automation_runs(
        &self,
        account: AccountId,
        id: AutomationId,
        page: &PageRequest,
    ) -> Result<Page<AutomationRun>> {
        self.store.list_runs(account, id, page).await
    }

    /// One run.
    pub async fn automation_run(&self, account: AccountId, id: AutomationRunId) -> Result<AutomationRun> {
        self.store.get_run(account, id).await
    }

    /// What the rule's current version would do for an event of
    /// `event_type` with `payload`, without doing any of it.
    pub async fn dry_run_automation(
        &self,
        account: AccountId,
        id: AutomationId,
        event_type: &str,
        payload: serde_json::Value,
    ) -> Result<DryRun> {
        let rule = self.store.get_automation(account, id).await?;
        let event_type = EventType::custom(event_type.to_owned())?;
        let event = Event::new(account, event_type, &payload, self.now());
        Engine::new(self.clone()).dry_run(&rule, &event).await
    }

    /// The account's scoring model (the default until one is stored).
    pub async fn scoring_model(&self, account: AccountId) -> Result<ScoringModel> {
        Ok(self.store.get_scoring_model(account).await?.unwrap_or_default())
    }

    /// Stores the account's scoring model. [`Error::Validation`] on a bad field.
    pub async fn put_scoring_model(&self, account: AccountId, model: ScoringModel) -> Result<ScoringModel> {
        model.validate()?;
        self.store.put_scoring_model(account, &model, self.now()).await?;
        Ok(model)
    }

    /// A contact's score changes, oldest first.
    pub async fn score_history(
        &self,
        account: AccountId,
        contact: ContactId,
        page: &PageRequest,
    ) -> Result<Page<ScoreChange>> {
        self.store.score_history(account, contact, page).await
    }

    /// Adds `delta` to a contact's score (clamped to 0..=100), moves its
    /// stage by the account's thresholds, and records the change with
    /// `reason` (`contact.updated` and `contact.score_changed`). `cause` is
    /// unique per contact: a change whose cause was applied before returns
    /// `None`, as does a change that would move nothing.
    pub async fn change_score(
        &self,
        account: AccountId,
        contact_id: ContactId,
        delta: i32,
        reason: &str,
        cause: &str,
        event_id: Option<EventId>,
    ) -> Result<Option<ScoreChange>> {
        let model = self.scoring_model(account).await?;
        for _ in 0..SCORE_ATTEMPTS {
            let contact = self.store.get_contact(account, contact_id).await?;
            let new_score = clamp_score(contact.lead_score, delta);
            let new_stage = model.stage_for(new_score, contact.lead_stage);
            if new_score == contact.lead_score && new_stage.is_none() {
                return Ok(None);
            }
            let now = self.now();
            let mut next = contact.clone();
            next.lead_score = new_score;
            next.lead_stage = new_stage.unwrap_or(contact.lead_stage);
            next.updated_at = now;
            let change = ScoreChange {
                id: uuid::Uuid::now_v7(),
                account_id: account,
                contact_id,
                old_score: contact.lead_score,
                new_score,
                new_stage,
                reason: reason.to_owned(),
                event_id,
                cause: cause.to_owned(),
                at: now,
            };
            let mut stored = next.clone();
            stored.version += 1;
            let updated = self.event(account, EventType::CONTACT_UPDATED, &stored);
            let changed = self.event(account, EventType::CONTACT_SCORE_CHANGED, &change);
            match self.store.apply_score_change(&next, &change, &updated, &changed).await {
                Ok(true) => return Ok(Some(change)),
                Ok(false) => return Ok(None),
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict("contact", "the contact kept changing; the score change was not applied"))
    }

    /// Schedules a schedule-triggered rule's next tick (a durable job; the
    /// chain of ticks belongs to the rule's `updated_at`, so an edit or a
    /// re-enable starts a new chain and ends the old one).
    async fn schedule_tick(&self, rule: &Automation) -> Result<()> {
        let Trigger::Schedule { every_minutes } = rule.definition.trigger else { return Ok(()) };
        if !rule.enabled {
            return Ok(());
        }
        let at = self.now() + Duration::minutes(i64::from(every_minutes));
        let payload = json!({ "automation_id": rule.id, "chain": rule.updated_at.timestamp_micros() });
        let key = format!("{}:{}", rule.id, at.timestamp_micros());
        schedule_job(self, SCHEDULE_JOB, rule.account_id, payload, at, &key).await
    }
}
