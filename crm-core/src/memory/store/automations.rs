//! [`AutomationStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};

use super::{MemoryStore, State, page_of};
use crate::domain::automation::{Automation, AutomationId, AutomationRun, AutomationRunId, AutomationVersion};
use crate::domain::scoring::{ScoreChange, ScoringModel};
use crate::ports::automations::check_score_change;
use crate::ports::store::check_event_account;
use crate::{AccountId, AutomationStore, Contact, ContactId, Error, Event, EventId, Page, PageRequest, Result};

/// Why a stale rule update is refused (every store words it alike).
pub(crate) const STALE_AUTOMATION: &str = "it was changed by someone else; reload and retry";

/// What the memory store keeps for automation and scoring.
#[derive(Debug, Default)]
pub(super) struct AutomationState {
    rules: BTreeMap<AutomationId, Automation>,
    versions: BTreeMap<(AutomationId, u32), AutomationVersion>,
    runs: BTreeMap<AutomationRunId, AutomationRun>,
    run_keys: HashMap<(AutomationId, EventId), AutomationRunId>,
    models: HashMap<AccountId, ScoringModel>,
    history: BTreeMap<uuid::Uuid, ScoreChange>,
    causes: HashSet<(ContactId, String)>,
}

impl State {
    fn rule(&self, account: AccountId, id: AutomationId) -> Result<&Automation> {
        self.automation.rules.get(&id).filter(|r| r.account_id == account).ok_or(Error::not_found("automation"))
    }
}

#[async_trait]
impl AutomationStore for MemoryStore {
    async fn insert_automation(&self, rule: &Automation, event: &Event) -> Result<()> {
        check_event_account(rule.account_id, event)?;
        rule.definition.validate()?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if s.automation.rules.contains_key(&rule.id) {
            return Err(Error::conflict("automation", "id already exists"));
        }
        let mut stored = rule.clone();
        stored.version = 1;
        s.automation.versions.insert((rule.id, 1), stored.version_record());
        s.automation.rules.insert(rule.id, stored);
        s.append(event);
        Ok(())
    }

    async fn update_automation(&self, rule: &Automation, event: &Event) -> Result<Automation> {
        check_event_account(rule.account_id, event)?;
        rule.definition.validate()?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let current = s.rule(rule.account_id, rule.id)?.clone();
        if current.version != rule.version {
            return Err(Error::conflict("automation", STALE_AUTOMATION));
        }
        let mut stored = rule.clone();
        stored.version = current.version + 1;
        stored.created_at = current.created_at;
        stored.enabled = current.enabled;
        s.automation.versions.insert((rule.id, stored.version), stored.version_record());
        s.automation.rules.insert(rule.id, stored.clone());
        s.append(event);
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
        let mut s = self.lock();
        s.ensure_new(event)?;
        let mut stored = s.rule(account, id)?.clone();
        stored.enabled = enabled;
        stored.updated_at = now;
        s.automation.rules.insert(id, stored.clone());
        s.append(event);
        Ok(stored)
    }

    async fn delete_automation(&self, account: AccountId, id: AutomationId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        s.rule(account, id)?;
        let a = &mut s.automation;
        a.rules.remove(&id);
        a.versions.retain(|(rule, _), _| *rule != id);
        a.runs.retain(|_, r| r.automation_id != id);
        a.run_keys.retain(|(rule, _), _| *rule != id);
        s.append(event);
        Ok(())
    }

    async fn get_automation(&self, account: AccountId, id: AutomationId) -> Result<Automation> {
        self.lock().rule(account, id).cloned()
    }

    async fn list_automations(&self, account: AccountId, page: &PageRequest) -> Result<Page<Automation>> {
        let s = self.lock();
        let items = s.automation.rules.values().filter(|r| r.account_id == account).cloned();
        Ok(page_of(items, page, |r| r.id.into_uuid()))
    }

    async fn count_automations(&self, account: AccountId) -> Result<u64> {
        Ok(self.lock().automation.rules.values().filter(|r| r.account_id == account).count() as u64)
    }

    async fn enabled_automations(&self, account: AccountId, event_type: &str) -> Result<Vec<Automation>> {
        let s = self.lock();
        Ok(s.automation
            .rules
            .values()
            .filter(|r| r.account_id == account && r.enabled && r.definition.trigger.event_type() == event_type)
            .cloned()
            .collect())
    }

    async fn get_automation_version(
        &self,
        account: AccountId,
        id: AutomationId,
        version: u32,
    ) -> Result<AutomationVersion> {
        let s = self.lock();
        s.rule(account, id)?;
        s.automation.versions.get(&(id, version)).cloned().ok_or(Error::not_found("automation version"))
    }

    async fn list_automation_versions(&self, account: AccountId, id: AutomationId) -> Result<Vec<AutomationVersion>> {
        let s = self.lock();
        s.rule(account, id)?;
        Ok(s.automation.versions.range((id, 0)..=(id, u32::MAX)).map(|(_, v)| v.clone()).collect())
    }

    async fn start_run(&self, run: &AutomationRun) -> Result<(AutomationRun, bool)> {
        let mut s = self.lock();
        s.rule(run.account_id, run.automation_id)?;
        if let Some(existing) = s.automation.run_keys.get(&(run.automation_id, run.event_id)) {
            let stored = s.automation.runs.get(existing).cloned().ok_or(Error::not_found("automation run"))?;
            return Ok((stored, false));
        }
        if s.automation.runs.contains_key(&run.id) {
            return Err(Error::conflict("automation run", "id already exists"));
        }
        s.automation.run_keys.insert((run.automation_id, run.event_id), run.id);
        s.automation.runs.insert(run.id, run.clone());
        Ok((run.clone(), true))
    }

    async fn find_run(&self, account: AccountId, rule: AutomationId, event: EventId) -> Result<Option<AutomationRun>> {
        let s = self.lock();
        let id = s.automation.run_keys.get(&(rule, event));
        Ok(id.and_then(|id| s.automation.runs.get(id)).filter(|r| r.account_id == account).cloned())
    }

    async fn save_run(&self, run: &AutomationRun, event: Option<&Event>) -> Result<()> {
        if let Some(e) = event {
            check_event_account(run.account_id, e)?;
        }
        let mut s = self.lock();
        if let Some(e) = event {
            s.ensure_new(e)?;
        }
        let stored = s
            .automation
            .runs
            .get_mut(&run.id)
            .filter(|r| r.account_id == run.account_id)
            .ok_or(Error::not_found("automation run"))?;
        stored.status = run.status;
        stored.reason = run.reason.clone();
        stored.next_step = run.next_step;
        stored.steps = run.steps.clone();
        stored.updated_at = run.updated_at;
        if let Some(e) = event {
            s.append(e);
        }
        Ok(())
    }

    async fn get_run(&self, account: AccountId, id: AutomationRunId) -> Result<AutomationRun> {
        let s = self.lock();
        s.automation
            .runs
            .get(&id)
            .filter(|r| r.account_id == account)
            .cloned()
            .ok_or(Error::not_found("automation run"))
    }

    async fn list_runs(
        &self,
        account: AccountId,
        rule: AutomationId,
        page: &PageRequest,
    ) -> Result<Page<AutomationRun>> {
        let s = self.lock();
        s.rule(account, rule)?;
        let items = s.automation.runs.values().filter(|r| r.automation_id == rule).cloned();
        Ok(page_of(items, page, |r| r.id.into_uuid()))
    }

    async fn latest_runs(&self, account: AccountId, rule: AutomationId, limit: u32) -> Result<Vec<AutomationRun>> {
        PageRequest::first(limit)?;
        let s = self.lock();
        s.rule(account, rule)?;
        let runs = s.automation.runs.values().rev().filter(|r| r.automation_id == rule);
        Ok(runs.take(limit as usize).cloned().collect())
    }

    async fn count_recent_runs(
        &self,
        account: AccountId,
        rule: AutomationId,
        contact: ContactId,
        since: DateTime<Utc>,
    ) -> Result<u64> {
        let s = self.lock();
        Ok(s.automation
            .runs
            .values()
            .filter(|r| {
                r.account_id == account
                    && r.automation_id == rule
                    && r.contact_id == Some(contact)
                    && r.started_at >= since
            })
            .count() as u64)
    }

    async fn get_scoring_model(&self, account: AccountId) -> Result<Option<ScoringModel>> {
        Ok(self.lock().automation.models.get(&account).cloned())
    }

    async fn put_scoring_model(&self, account: AccountId, model: &ScoringModel, _now: DateTime<Utc>) -> Result<()> {
        model.validate()?;
        self.lock().automation.models.insert(account, model.clone());
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
        let mut s = self.lock();
        s.ensure_new(updated)?;
        s.ensure_new(changed)?;
        let current = s.contact(contact.account_id, contact.id)?.clone();
        if s.automation.causes.contains(&(contact.id, change.cause.clone())) {
            return Ok(false);
        }
        if current.version != contact.version {
            return Err(Error::conflict("contact", "it was changed by someone else; reload and retry"));
        }
        let mut stored = current;
        stored.lead_score = contact.lead_score;
        stored.lead_stage = contact.lead_stage;
        stored.updated_at = contact.updated_at;
        stored.version += 1;
        s.contacts.insert(contact.id, stored);
        s.automation.causes.insert((contact.id, change.cause.clone()));
        s.automation.history.insert(change.id, change.clone());
        s.append(updated);
        s.append(changed);
        Ok(true)
    }

    async fn has_score_cause(&self, account: AccountId, contact: ContactId, cause: &str) -> Result<bool> {
        let s = self.lock();
        Ok(s.contact(account, contact).is_ok() && s.automation.causes.contains(&(contact, cause.to_owned())))
    }

    async fn score_history(
        &self,
        account: AccountId,
        contact: ContactId,
        page: &PageRequest,
    ) -> Result<Page<ScoreChange>> {
        let s = self.lock();
        s.contact(account, contact)?;
        let items = s.automation.history.values().filter(|c| c.contact_id == contact).cloned();
        Ok(page_of(items, page, |c| c.id))
    }
}
